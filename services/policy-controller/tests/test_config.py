import pytest
from pydantic import ValidationError

from policy_controller import config
from policy_controller.config import Settings, SettingsProblem, TargetKind
from scaling_policy.predictive import PredictiveSettings
from service_kit import error_lines


def _problems(**environment):
    with pytest.raises(ValidationError) as caught:
        Settings(**environment)
    return error_lines(caught.value)


def test_settings_come_from_policy_controller_variables(env, monkeypatch):
    monkeypatch.setenv("POLICY_CONTROLLER_PORT", "9000")
    monkeypatch.setenv("POLICY_CONTROLLER_TARGET_KIND", "deployments")
    monkeypatch.setenv("POLICY_CONTROLLER_TREND_POINTS", "6")
    monkeypatch.setenv("POLICY_CONTROLLER_DRY_RUN", "true")
    s = Settings()
    assert (s.policy_controller_host, s.policy_controller_port) == ("127.0.0.1", 9000)
    assert s.policy_controller_prometheus_url == "http://prometheus.test:9090"
    assert s.policy_controller_target_kind is TargetKind.deployments
    assert (s.policy_controller_min_replicas, s.policy_controller_max_replicas) == (1, 10)
    assert s.policy_controller_dry_run is True
    assert s.namespace() == "ims-rec"
    assert s.ca_file() is None  # a plain-http API
    assert s.check() == []


def test_the_policys_settings_and_lead_time(env):
    s = Settings()
    # start-up 15 + ready 0 + scrape interval 5 + half the 30 s window + a 15 s sync
    assert s.lead_time_s == 50
    # the trend waits for the queries' window to fill (POLICY_CONTROLLER_METRIC_WINDOW_S)
    assert s.predictive() == PredictiveSettings(
        p0_ms=500, knee_per_proxy=6, lead_time_s=50, trend_after_s=30
    )


def test_the_cpu_knee_needs_the_limit_and_can_be_turned_off(env, monkeypatch):
    assert Settings().predictive().cpu_limit_cores is None
    monkeypatch.setenv("POLICY_CONTROLLER_CPU_LIMIT_CORES", "0.03")
    monkeypatch.setenv("POLICY_CONTROLLER_CPU_CEILING", "0.8")
    predictive = Settings().predictive()
    assert (predictive.cpu_limit_cores, predictive.cpu_ceiling) == (0.03, 0.8)
    monkeypatch.setenv("POLICY_CONTROLLER_CPU_KNEE", "False")  # as `str(False)` writes it
    assert Settings().predictive().cpu_limit_cores is None
    monkeypatch.setenv("POLICY_CONTROLLER_CPU_CEILING", "0.4")
    [line] = _problems()
    assert line.startswith("POLICY_CONTROLLER_CPU_CEILING: must be at least 0.5")


def test_required_settings_are_named(monkeypatch):
    lines = _problems()
    assert sorted(lines) == sorted(
        f"{name}: required, not set"
        for name in (
            "POLICY_CONTROLLER_PROMETHEUS_URL",
            "POLICY_CONTROLLER_QUERY_CPU",
            "POLICY_CONTROLLER_QUERY_P99_BY_POD",
            "POLICY_CONTROLLER_QUERY_P99",
            "POLICY_CONTROLLER_QUERY_INVITE_RATE",
            "POLICY_CONTROLLER_TARGET_NAME",
            "POLICY_CONTROLLER_KNEE_PER_PROXY",
        )
    )


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("POLICY_CONTROLLER_PORT", "70000", "less than 65536"),
        ("POLICY_CONTROLLER_PROMETHEUS_URL", "tb-prometheus:9090", "http:// or https:// URL"),
        ("POLICY_CONTROLLER_KUBE_API", "kubernetes.default.svc", "http:// or https:// URL"),
        ("POLICY_CONTROLLER_TARGET_NAME", "Tb_Sip_Proxy", "DNS label"),
        ("POLICY_CONTROLLER_TARGET_KIND", "pods", "statefulsets"),
        ("POLICY_CONTROLLER_NAMESPACE", "Ims Rec", "DNS label"),
        ("POLICY_CONTROLLER_KNEE_PER_PROXY", "0", "greater than 0"),
        ("POLICY_CONTROLLER_QUERY_CPU", "", "at least 1 character"),
        ("POLICY_CONTROLLER_TREND_POINTS", "2", "greater than or equal to 3"),
        ("POLICY_CONTROLLER_SYNC_PERIOD_S", "0", "greater than 0"),
    ],
)
def test_bad_settings_are_refused_naming_their_variable(env, monkeypatch, name, value, problem):
    monkeypatch.setenv(name, value)
    [line] = _problems()
    assert line.startswith(f"{name}: "), line
    assert problem in line
    assert len(value) < 3 or value not in line  # the value is not echoed


def test_checks_across_settings_name_both(env, monkeypatch):
    monkeypatch.setenv("POLICY_CONTROLLER_MIN_REPLICAS", "5")
    monkeypatch.setenv("POLICY_CONTROLLER_MAX_REPLICAS", "4")
    assert _problems() == [
        "POLICY_CONTROLLER_MIN_REPLICAS must not exceed POLICY_CONTROLLER_MAX_REPLICAS"
    ]
    monkeypatch.setenv("POLICY_CONTROLLER_MAX_REPLICAS", "5")
    monkeypatch.setenv("POLICY_CONTROLLER_CALM_FRACTION", "0.7")
    assert _problems() == [
        "POLICY_CONTROLLER_CALM_FRACTION must be below POLICY_CONTROLLER_BREACH_FRACTION"
    ]


def test_the_namespace_comes_from_the_service_account(env, monkeypatch, tmp_path):
    monkeypatch.setenv("POLICY_CONTROLLER_NAMESPACE", "")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", tmp_path)
    with pytest.raises(SettingsProblem, match=r"^POLICY_CONTROLLER_NAMESPACE: not set, and "):
        Settings().namespace()
    (tmp_path / "namespace").write_text("ims-rec\n")
    assert Settings().namespace() == "ims-rec"


def test_an_https_api_needs_its_ca_file(env, monkeypatch, tmp_path):
    monkeypatch.setenv("POLICY_CONTROLLER_KUBE_API", "https://kubernetes.default.svc/")
    monkeypatch.setenv("POLICY_CONTROLLER_KUBE_CA_FILE", str(tmp_path / "ca.crt"))
    settings = Settings()
    assert settings.policy_controller_kube_api == "https://kubernetes.default.svc"
    [problem] = settings.check()
    assert problem.startswith("POLICY_CONTROLLER_KUBE_CA_FILE: ")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    assert settings.ca_file() == tmp_path / "ca.crt"
