"""The variables' tables in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from service_kit import ServiceSettings, envdoc

PAGE = f"# Configuration\n\nintro\n\n{envdoc.BEGIN}\nold\n{envdoc.END}\n\nafter\n"


def test_one_row_per_variable_with_type_bounds_and_default(toy_repo: Path) -> None:
    table = envdoc.generated(toy_repo)
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| `")}
    assert rows["| `TOY_PORT`"] == "| `TOY_PORT` | integer, > 0, < 65536 | `8000` | the \\| port |"
    assert rows["| `API_TOKEN`"] == "| `API_TOKEN` | text or unset | unset |  |"
    assert rows["| `DEBUG`"] == "| `DEBUG` | true/false | `false` |  |"
    # paths as on every machine: inside the repository, under the home directory
    assert "`services/toy-svc/src/toy_svc/data`" in rows["| `TOY_DIR`"]
    assert "`~/.toy`" in rows["| `TOY_HOME`"]
    assert "### toy-svc" in table


def test_a_field_without_a_default_is_required(tmp_path: Path) -> None:
    class Needy(ServiceSettings):
        listen_fields = ("needy_host", "needy_port")

        needy_host: str = "127.0.0.1"
        needy_port: int = 8000
        needy_url: str = Field(description="the one it needs")

    fields = Needy.model_fields
    assert envdoc.default_cell(fields["needy_url"], tmp_path) == "required"
    assert envdoc.default_cell(fields["needy_port"], tmp_path) == "`8000`"


def test_only_the_marked_part_is_replaced(toy_repo: Path) -> None:
    (toy_repo / "docs").mkdir()
    page = toy_repo / "docs" / "configuration.md"
    page.write_text(PAGE)
    with pytest.raises(SystemExit) as exited:
        envdoc.main(["--check", "--root", str(toy_repo)])
    assert exited.value.code == 1
    envdoc.main(["--root", str(toy_repo)])
    text = page.read_text()
    assert text.startswith("# Configuration\n\nintro\n\n")
    assert text.endswith("\n\nafter\n")
    assert "old" not in text
    assert "`TOY_PORT`" in text
    envdoc.main(["--check", "--root", str(toy_repo)])  # current: no exit


def test_a_page_without_the_markers_is_an_error(toy_repo: Path) -> None:
    with pytest.raises(ValueError, match="markers"):
        envdoc.render("# Configuration\n", toy_repo)
