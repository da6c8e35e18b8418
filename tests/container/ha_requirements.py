"""Print the pinned requirements of the integrations Home Assistant loads in the test.

Run with the Python of Home Assistant's venv. Those are the integrations it
always sets up (``homeassistant.bootstrap``: the core, the default ones, the
logging and HTTP ones) and the ones the test's configuration.yaml names, with
every integration they depend on or load after, as their own manifests pin them. Home
Assistant would install these itself on first start; the test starts it with
``--skip-pip``, so they are installed once, when the root is built.
"""

from __future__ import annotations

import json
from pathlib import Path

from homeassistant import bootstrap, components

# configuration.yaml in test_homeassistant.py: api, config and mqtt (through its config entry).
CONFIGURED = {"api", "config", "mqtt"}


def main() -> None:
    folder = Path(components.__file__).parent
    wanted = (
        set(bootstrap.CORE_INTEGRATIONS)
        | set(bootstrap.LOGGING_AND_HTTP_DEPS_INTEGRATIONS)
        | set(bootstrap.DEFAULT_INTEGRATIONS)
        | CONFIGURED
    )
    seen: set[str] = set()
    requirements: set[str] = set()
    while wanted:
        domain = wanted.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest_file = folder / domain / "manifest.json"
        if not manifest_file.exists():
            continue
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        requirements.update(manifest.get("requirements", []))
        # After-dependencies too: they are imported when present (MQTT's config flow imports the
        # hassio integration, whose client library is one of its requirements).
        wanted.update(manifest.get("dependencies", []))
        wanted.update(manifest.get("after_dependencies", []))
    print("\n".join(sorted(requirements)))


if __name__ == "__main__":
    main()
