"""The repository's services by convention: services/<name>/src/<package>/ with the settings
in <package>.config.Settings and, for one that serves HTTP, the app in <package>.main.create_app
(called with its settings; the analyzer's offline mode has no app, its service mode has)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from service_kit.settings import ServiceSettings


class App(Protocol):
    def openapi(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Service:
    name: str
    directory: Path
    package: str

    def settings_class(self) -> type[ServiceSettings]:
        settings = importlib.import_module(f"{self.package}.config").Settings
        return cast(type[ServiceSettings], settings)

    def app_factory(self) -> Callable[[ServiceSettings], App]:
        return cast(
            Callable[[ServiceSettings], App],
            importlib.import_module(f"{self.package}.main").create_app,
        )

    def default_app(self) -> App:
        """The app with every setting at its default, whatever the environment holds (so a
        document generated from it is the same on every machine); nothing starts."""
        return self.app_factory()(self.settings_class().model_construct())


def discover(root: Path) -> list[Service]:
    """Every service under root/services, by name."""
    found = []
    for project in sorted((root / "services").glob("*/pyproject.toml")):
        packages = [p for p in (project.parent / "src").iterdir() if (p / "config.py").is_file()]
        if len(packages) != 1:
            raise LookupError(f"{project.parent}: expected one src/<package>/config.py")
        found.append(Service(project.parent.name, project.parent, packages[0].name))
    return found
