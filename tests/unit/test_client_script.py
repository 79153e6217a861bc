"""The ES module build of alight.js, made from the script's own source."""

from __future__ import annotations

import pytest

from alight.channels.client_script import STATIC, module_build

SCRIPT = """/* doc */
(function (root, factory) {
  root.alight = factory(root)
})(self,
// alight:factory begin
function (root) {
  return { Socket: 1 }
}
// alight:factory end
)
"""


def test_the_module_is_the_factory_called_with_globalthis_and_its_exports() -> None:
    module = module_build(SCRIPT)
    assert "const alight = (function (root) {\n  return { Socket: 1 }\n})(globalThis)\n" in module
    assert "export const Socket = alight.Socket\n" in module
    assert "export const LongPoll = alight.LongPoll\n" in module
    assert module.endswith("export default alight\n")
    assert "root.alight" not in module


@pytest.mark.parametrize("marker", ["// alight:factory begin", "// alight:factory end"])
def test_a_script_without_its_markers_is_refused(marker: str) -> None:
    with pytest.raises(ValueError, match="substring not found"):
        module_build(SCRIPT.replace(marker, "// moved"))


def test_the_shipped_module_is_the_build_of_the_shipped_script() -> None:
    """``static/alight.mjs`` is made from ``static/alight.js``; after changing the script,
    run ``python -m alight.channels.client_script``."""
    script = (STATIC / "alight.js").read_text(encoding="utf-8")
    assert (STATIC / "alight.mjs").read_text(encoding="utf-8") == module_build(script)
