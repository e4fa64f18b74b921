import pytest
from pydantic import ValidationError

from csvgen.config import PACKAGED_DATA, Settings
from scenario_gen.errors import MilanoError


def test_settings_come_from_csvgen_variables(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("CSVGEN_HOST", "0.0.0.0")
    monkeypatch.setenv("CSVGEN_PORT", "9000")
    monkeypatch.setenv("CSVGEN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CSVGEN_MAX_ROWS", "1000")
    settings = Settings()
    assert (
        settings.csvgen_host,
        settings.csvgen_port,
        settings.csvgen_data_dir,
        settings.csvgen_max_rows,
    ) == (
        "0.0.0.0",
        9000,
        tmp_path,
        1000,
    )
    assert Settings.model_fields["csvgen_data_dir"].default == PACKAGED_DATA


@pytest.mark.parametrize(("name", "value"), [("CSVGEN_PORT", "70000"), ("CSVGEN_MAX_ROWS", "0")])
def test_bad_settings_are_refused_with_their_name(monkeypatch: pytest.MonkeyPatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("CSVGEN_").lower()):
        Settings()


def test_data_files_are_named_without_paths():
    settings = Settings()
    assert settings.data_file("milano-synthetic-day.tsv").is_file()
    for bad in ("../pyproject.toml", "/etc/passwd", ".hidden", ""):
        with pytest.raises(MilanoError, match="no path"):
            settings.data_file(bad)
    with pytest.raises(MilanoError, match=r"holds: .*milano-synthetic-day\.tsv"):
        settings.data_file("sms-call-internet-mi-2013-11-04.txt")
