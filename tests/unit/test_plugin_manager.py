"""The plugin manager: which plugins load, and startup errors that name the plugin at fault."""
from __future__ import annotations

import inspect
import logging
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import plugins
from payment_providers.testbank.provider import TestBankProvider
from plugins import (
    CONTRACT_VERSION,
    ErrorCode,
    Limits,
    PayoutProvider,
    PayoutStatus,
    PluginStartupError,
    Result,
    hookimpl,
)
from plugins import hookspecs
from plugins.manager import (
    DEFAULT_PLUGINS,
    ENTRYPOINT_GROUP,
    collect_providers,
    get_plugin_manager,
)
from plugins.provider import contract_compatible

TESTBANK = "payment_providers.testbank.provider"


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASHBACK_PLUGINS", raising=False)
    monkeypatch.delenv("CASHBACK_TRACE_HOOKS", raising=False)


class FakeProvider(PayoutProvider):
    """The smallest valid provider."""

    code = "fake"
    verbose_name = {"en": "Fake", "ru": "Фейк"}
    currency = "RUB"
    limits = Limits(Decimal("1.00"), Decimal("100.00"))
    contract_version = CONTRACT_VERSION

    def validate_account(self, raw: str) -> str:
        return raw

    def submit(self, request: Any, idempotency_key: str) -> Result:
        return Result(PayoutStatus.PENDING)

    def status(self, idempotency_key: str, request: Any = None) -> Result:
        return Result(PayoutStatus.PENDING)


def variant(**attributes: Any) -> type[PayoutProvider]:
    """A FakeProvider subclass with some class attributes replaced."""
    return type("Variant", (FakeProvider,), attributes)


def plugin_module(name: str, *classes: object, hook: str = "register_payout_providers",
                  impl: Callable[..., Any] | None = None) -> types.ModuleType:
    """A plugin module named ``name`` whose ``hook`` returns ``classes``."""
    module = types.ModuleType(name)

    def register() -> list[object]:
        return list(classes)

    setattr(module, hook, hookimpl(impl or register))
    return module


def startup_error(*plugin_objects: object, settings: Any = None) -> str:
    with pytest.raises(PluginStartupError) as caught:
        pm = get_plugin_manager(load_entrypoints=False, plugins=plugin_objects)
        collect_providers(pm, settings)
    return str(caught.value)


# --------------------------------------------------------------------------- the hooks

def test_hookspecs_have_contract_docstrings() -> None:
    """Every hookspec says when and where it runs, its params, firstresult and what not to do."""
    specs = [f for name, f in vars(hookspecs).items()
             if inspect.isfunction(f) and hasattr(f, "cashback_spec")]
    assert {f.__name__ for f in specs} == {"register_payout_providers", "payout_status_changed"}
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        for param in inspect.signature(spec).parameters:
            assert f":param {param}:" in doc, (spec.__name__, param)
        assert "Called" in doc and "process" in doc and "firstresult" in doc, spec.__name__
        assert "must not" in doc, spec.__name__


def test_hook_register_payout_providers() -> None:
    """The test provider registers through the hook and is built with its settings."""
    pm = get_plugin_manager(load_entrypoints=False, plugins=[TESTBANK])
    providers = collect_providers(pm, {"test": {"base_url": "http://127.0.0.1:9/"}})
    assert list(providers) == ["test"]
    assert isinstance(providers["test"], TestBankProvider)
    assert providers["test"].base_url == "http://127.0.0.1:9"
    assert providers["test"].read_timeout == 30.0


def test_hook_payout_status_changed(caplog: pytest.LogCaptureFixture) -> None:
    """Every implementation hears a transition; the default plugin logs it."""
    heard: list[tuple[int, str]] = []

    class Listener:
        @hookimpl
        def payout_status_changed(self, payout_id: int, new: str) -> None:
            heard.append((payout_id, new))

    pm = get_plugin_manager(load_entrypoints=False, plugins=[Listener()])
    with caplog.at_level(logging.INFO, logger="plugins.manager"):
        pm.hook.payout_status_changed(payout_id=7, provider_code="test", old="submitting",
                                      new="succeeded")
    assert heard == [(7, "succeeded")]
    assert "Payout 7: submitting -> succeeded (provider test)" in caplog.text


def test_default_plugins_are_always_registered() -> None:
    """DEFAULT_PLUGINS load even when no external plugin does."""
    pm = get_plugin_manager(load_entrypoints=False)
    assert {name for name, _ in pm.list_name_plugin()} == set(DEFAULT_PLUGINS)
    assert collect_providers(pm) == {}


# --------------------------------------------------------------------------- validation

def test_duplicate_codes_name_both_plugins() -> None:
    """Two plugins claiming the same code stop startup, naming both."""
    message = startup_error(plugin_module("first_plugin", FakeProvider),
                            plugin_module("second_plugin", variant()))
    assert "'second_plugin'" in message and "'first_plugin'" in message
    assert "code 'fake' is already registered" in message


@pytest.mark.parametrize(("attributes", "problem"), [
    ({"currency": None}, "missing attribute 'currency'"),
    ({"code": None}, "missing attribute 'code'"),
    ({"code": "Bad Code"}, "code 'Bad Code' must match"),
    ({"verbose_name": {"en": "Only English"}}, "verbose_name"),
    ({"currency": "rub"}, "currency 'rub'"),
    ({"limits": (1.0, 100.0)}, "must be a plugins.Limits"),
    ({"limits": Limits(Decimal("0.001"), Decimal("1"))}, "more than amount_places=2"),
    ({"supports_balance": "yes"}, "supports_balance must be a bool"),
], ids=["no-currency", "no-code", "bad-code", "verbose-name", "currency", "float-limits",
        "places", "flag"])
def test_bad_attributes_name_plugin_and_problem(attributes: dict[str, Any], problem: str) -> None:
    """A provider class with a missing or mistyped attribute stops startup."""
    message = startup_error(plugin_module("sloppy_plugin", variant(**attributes)))
    assert "plugin 'sloppy_plugin'" in message and "Variant" in message
    assert problem in message


@pytest.mark.parametrize("version", ["2.0", "1.99", "0.9", "one", "1"])
def test_incompatible_contract_version(version: str) -> None:
    """A provider written for another contract version does not load."""
    message = startup_error(plugin_module("future_plugin", variant(contract_version=version)))
    assert "plugin 'future_plugin'" in message
    assert f"contract_version {version!r} is not compatible" in message


def test_contract_compatibility_rule() -> None:
    """Same major and a minor not newer than the core's."""
    assert contract_compatible("1.0", "1.0") and contract_compatible("1.0", "1.3")
    assert not contract_compatible("1.4", "1.3") and not contract_compatible("2.0", "1.3")


def test_unimplemented_abstract_method() -> None:
    """A provider that forgot submit cannot load."""
    incomplete = type("Incomplete", (PayoutProvider,), {
        "code": "half", "verbose_name": {"en": "H", "ru": "H"}, "currency": "RUB",
        "limits": Limits(Decimal(1), Decimal(2)), "contract_version": CONTRACT_VERSION,
        "validate_account": lambda self, raw: raw, "status": lambda self, key, request=None: None})
    message = startup_error(plugin_module("lazy_plugin", incomplete))
    assert "plugin 'lazy_plugin'" in message
    assert "abstract methods not implemented: submit" in message


def test_not_a_provider_class() -> None:
    """Returning an instance or an unrelated class is refused."""
    assert "is not a subclass of plugins.PayoutProvider" in startup_error(
        plugin_module("instance_plugin", FakeProvider()))
    assert "is not a subclass" in startup_error(plugin_module("dict_plugin", dict))


def test_misspelled_hookimpl_names_the_plugin() -> None:
    """A hookimpl with a misspelled name fails check_pending, naming the plugin."""
    message = startup_error(plugin_module("typo_plugin", FakeProvider,
                                          hook="register_payout_provider"))
    assert "plugin 'typo_plugin'" in message
    assert "unknown hook 'register_payout_provider'" in message


def test_hookimpl_with_unknown_argument_names_the_plugin() -> None:
    """A hookimpl asking for an argument the spec lacks fails at registration."""
    def register(settings: Any) -> list[object]:
        return []

    message = startup_error(plugin_module("greedy_plugin", impl=register))
    assert "plugin 'greedy_plugin'" in message and "settings" in message


def test_hookimpl_that_raises_names_the_plugin() -> None:
    """An exception inside register_payout_providers is reported with the plugin's name."""
    def register() -> list[object]:
        raise RuntimeError("boom")

    message = startup_error(plugin_module("crashing_plugin", impl=register))
    assert "plugin 'crashing_plugin'" in message and "boom" in message


def test_bad_settings_name_the_plugin() -> None:
    """A provider whose constructor rejects its settings stops startup."""
    message = startup_error(TESTBANK, settings={"test": {"read_timeout": -1}})
    assert f"plugin '{TESTBANK}'" in message and "read_timeout" in message


def test_settings_for_a_missing_provider_warn(caplog: pytest.LogCaptureFixture) -> None:
    """Settings for a provider nobody registers are a warning, not a crash."""
    pm = get_plugin_manager(load_entrypoints=False)
    with caplog.at_level(logging.WARNING, logger="plugins.manager"):
        assert collect_providers(pm, {"qiwi": {}}) == {}
    assert "'qiwi'" in caplog.text


# --------------------------------------------------------------------------- selection

@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                      ) -> Iterator[Callable[[dict[str, str]], str]]:
    """Install (on sys.path) a distribution whose entry points load the given module sources."""
    created: list[str] = []

    def install(modules: dict[str, str]) -> str:
        tag = uuid.uuid4().hex[:8]
        entries = []
        for entry, source in modules.items():
            module = f"fakeprov_{entry}_{tag}"
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            entries.append(f"{entry}_{tag} = {module}")
            created.append(module)
        info = tmp_path / f"cashback_fake_{tag}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: cashback-fake-{tag}\n"
                                       "Version: 0.1\n")
        (info / "entry_points.txt").write_text(f"[{ENTRYPOINT_GROUP}]\n" + "\n".join(entries))
        monkeypatch.syspath_prepend(str(tmp_path))
        return tag

    yield install
    for module in created:
        sys.modules.pop(module, None)


PROVIDER_SOURCE = """
    from plugins import hookimpl
    from tests.unit.test_plugin_manager import variant

    @hookimpl
    def register_payout_providers():
        return [variant(code={code!r})]
"""


def test_entry_points_load_and_errors_name_the_distribution(fake_distribution: Any) -> None:
    """Entry-point plugins load; a duplicate code names the entry point and its distribution."""
    tag = fake_distribution({"one": PROVIDER_SOURCE.format(code="one_code")})
    providers = collect_providers(get_plugin_manager())
    assert "one_code" in providers

    tag = fake_distribution({"a": PROVIDER_SOURCE.format(code="dup"),
                             "b": PROVIDER_SOURCE.format(code="dup")})
    with pytest.raises(PluginStartupError) as caught:
        collect_providers(get_plugin_manager())
    assert f"distribution cashback-fake-{tag} 0.1" in str(caught.value)
    assert "code 'dup' is already registered" in str(caught.value)


def test_broken_entry_point_names_the_distribution(fake_distribution: Any) -> None:
    """An entry point that fails to import stops startup, naming it and its distribution."""
    tag = fake_distribution({"broken": "raise ImportError('missing dependency xyz')\n"})
    with pytest.raises(PluginStartupError) as caught:
        get_plugin_manager()
    message = str(caught.value)
    assert f"'broken_{tag}'" in message and f"cashback-fake-{tag} 0.1" in message
    assert "missing dependency xyz" in message


def test_cashback_plugins_selects_modules_instead_of_entry_points(
        fake_distribution: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """CASHBACK_PLUGINS picks the plugins; entry points are not scanned."""
    fake_distribution({"broken": "raise ImportError('must not be imported')\n"})
    monkeypatch.setenv("CASHBACK_PLUGINS", f" {TESTBANK} , ")
    pm = get_plugin_manager()
    assert {name for name, _ in pm.list_name_plugin()} == {*DEFAULT_PLUGINS, TESTBANK}
    assert list(collect_providers(pm)) == ["test"]

    monkeypatch.setenv("CASHBACK_PLUGINS", "")
    assert collect_providers(get_plugin_manager()) == {}


def test_cashback_plugins_bad_path_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CASHBACK_PLUGINS entry that cannot be imported is named in the error."""
    monkeypatch.setenv("CASHBACK_PLUGINS", "payment_providers.nonexistent.provider")
    with pytest.raises(PluginStartupError, match="'payment_providers.nonexistent.provider'"):
        get_plugin_manager()


def test_trace_hooks(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """CASHBACK_TRACE_HOOKS=1 writes each hook call to stderr."""
    monkeypatch.setenv("CASHBACK_TRACE_HOOKS", "1")
    pm = get_plugin_manager(load_entrypoints=False, plugins=[TESTBANK])
    collect_providers(pm)
    assert "register_payout_providers" in capsys.readouterr().err


# --------------------------------------------------------------------------- the SDK surface

def test_sdk_surface_is_explicit() -> None:
    """Plugin authors get exactly the documented names."""
    assert set(plugins.__all__) == {
        "hookimpl", "hookspec", "PayoutProvider", "Result", "PayoutStatus", "ErrorCode", "Quote",
        "Limits", "PayoutRequest", "InvalidAccount", "PayoutProviderError", "PluginStartupError",
        "CONTRACT_VERSION", "ProviderSettings", "HandleStore", "MemoryHandleStore"}
    assert all(hasattr(plugins, name) for name in plugins.__all__)


def test_results_refuse_float_money_and_inconsistent_states() -> None:
    """Result takes Decimal only, and a failure needs its error code."""
    with pytest.raises(TypeError):
        Result(PayoutStatus.SUCCEEDED, amount=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Result(PayoutStatus.FAILED_FINAL)
    with pytest.raises(ValueError):
        Result(PayoutStatus.SUCCEEDED, ErrorCode.DECLINED)
    assert Result.failed(ErrorCode.INSUFFICIENT_FUNDS).status is PayoutStatus.FAILED_RETRYABLE
    assert Result.failed(ErrorCode.DECLINED).status is PayoutStatus.FAILED_FINAL
    assert ErrorCode.TIMEOUT.default_status is PayoutStatus.UNKNOWN
    assert ErrorCode.AUTH.pauses_provider and not ErrorCode.RATE_LIMITED.pauses_provider
