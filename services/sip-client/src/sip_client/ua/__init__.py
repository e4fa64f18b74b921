"""The softphones of one pod as a sans-I/O user agent: bytes and time in, bytes and events out.

- `pod_config`: `PodConfig`, what one pod is (its phones, addresses, timers).
- `state`: what the pod remembers per phone and per call.
- `contexts`: what each client transaction and each timer is for (small frozen values).
- `pod`: `SoftphonePod`, the registrations and calls on sip-core's transaction layer and
  digest flow.
"""

from sip_client.ua.pod import PodEvent, SoftphonePod
from sip_client.ua.pod_config import PodConfig

__all__ = ["PodConfig", "PodEvent", "SoftphonePod"]
