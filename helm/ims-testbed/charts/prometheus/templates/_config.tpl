{{/*
prometheus.yml: what the umbrella's ServiceMonitor (templates/monitoring.yaml) selects, found
and labelled without the operator, and the kubelets' resource metrics for container CPU. Every series
gets the labels the dashboard and the prometheus-adapter rules group by: component, pod,
container, namespace, service (the kubelet's carry their own pod, container, namespace).
The targets come from the pod's discovery sidecar (files/kube_sd.py): http_sd_configs with
the __meta_kubernetes_* labels of kubernetes_sd_configs, which the image's Prometheus (Debian's
build) lacks, so the relabelling is what it would be with Kubernetes discovery.
*/}}
{{- define "prometheus.config" -}}
{{- $sa := "/var/run/secrets/kubernetes.io/serviceaccount" -}}
global:
  scrape_interval: {{ .Values.scrapeInterval }}
  evaluation_interval: {{ .Values.scrapeInterval }}
# the umbrella's recording rules (files/recording-rules.yaml, its ConfigMap <fullname>-prometheus-rules)
rule_files:
  - /etc/prometheus-rules/*.yaml
scrape_configs:
  - job_name: ims-testbed
    metrics_path: /metrics
    # role endpoints in the release's namespace; a new proxy is found within one interval
    # (and Prometheus, which may start before the sidecar, finds the first ones as soon)
    http_sd_configs:
      - url: {{ printf "http://127.0.0.1:%v/endpoints" .Values.discovery.port }}
        refresh_interval: {{ .Values.scrapeInterval }}
    relabel_configs:
      # the ServiceMonitor's selector: the release's Services that serve /metrics
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_name]
        regex: ims-testbed
        action: keep
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_instance]
        regex: {{ .Release.Name | quote }}
        action: keep
      - source_labels: [__meta_kubernetes_service_label_ims_testbed_metrics]
        regex: "true"
        action: keep
      # its endpoints: Kamailio's and the services' port, the analyzers'
      - source_labels: [__meta_kubernetes_endpoint_port_name]
        regex: http|analyzer
        action: keep
      - source_labels: [__meta_kubernetes_endpoint_ready]
        regex: "true"
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      # job and service: the Service's name, as the operator gives them
      - source_labels: [__meta_kubernetes_service_name]
        target_label: service
      - source_labels: [__meta_kubernetes_service_name]
        target_label: job
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      # the container whose port it is (the analyzer's too, as a native sidecar)
      - source_labels: [__meta_kubernetes_pod_container_name]
        target_label: container
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
        target_label: component
  # container_cpu_usage_seconds_total{namespace,pod,container} from the kubelet's resource
  # metrics, the very counters metrics-server serves the HPA (the kubelet labels them itself;
  # its cAdvisor endpoint names containers only where the runtime listens on its default
  # socket), through the API server's node proxy (no kubelet port to reach, no kubelet
  # certificate to trust), with this pod's token
  - job_name: kubelet
    scheme: https
    tls_config:
      ca_file: {{ $sa }}/ca.crt
    authorization:
      credentials_file: {{ $sa }}/token
    # role node
    http_sd_configs:
      - url: {{ printf "http://127.0.0.1:%v/nodes" .Values.discovery.port }}
        refresh_interval: {{ .Values.scrapeInterval }}
    relabel_configs:
      - source_labels: [__meta_kubernetes_node_name]
        target_label: node
      - source_labels: [__meta_kubernetes_node_name]
        target_label: instance
      - target_label: __address__
        replacement: kubernetes.default.svc:443
      - source_labels: [__meta_kubernetes_node_name]
        regex: (.+)
        target_label: __metrics_path__
        replacement: /api/v1/nodes/${1}/proxy/metrics/resource
    metric_relabel_configs:
      # every container of every node: keep the release's namespace only
      - source_labels: [namespace]
        regex: {{ .Release.Namespace | quote }}
        action: keep
{{- end -}}
