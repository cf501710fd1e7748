"""pytest plugin: the ``lora_audit`` fixture (loads nothing heavy; torch is imported when it is called).

Registered through the ``pytest11`` entry point of verified-lora, so in another project's tests::

    def test_my_lora(lora_audit):
        lora_audit("mypkg.lora:make_layer")        # or a factory callable

It runs :func:`verified_lora.audit.assert_lora_module_ok` and fails the test with the list of
failed checks. Without the entry point, add ``pytest_plugins = ["verified_lora.audit.pytest_plugin"]``
to the root ``conftest.py``.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def lora_audit():
    """``lora_audit(factory_or_target, *, seed=0, examples=2, checks=None) -> AuditReport`` (asserts)."""
    from . import assert_lora_module_ok

    return assert_lora_module_ok
