"""Build the pluggy plugin manager and the validated set of payout providers.

Startup in every process (web and worker)::

    pm = get_plugin_manager()
    providers = collect_providers(pm, config["PAYOUT_PROVIDERS"])   # {code: PayoutProvider}

Which plugins load:

1. :data:`DEFAULT_PLUGINS`, always (internal core defaults);
2. then the modules listed in ``$CASHBACK_PLUGINS`` (comma-separated ``module`` or
   ``module:attribute`` specs) when that variable is set, even to an empty string;
   otherwise every entry point of the :data:`ENTRYPOINT_GROUP` group (``load_entrypoints=True``);
3. then the ``plugins=`` argument (objects or specs), for tests and embedding.

``CASHBACK_TRACE_HOOKS=1`` writes every hook call and its result to stderr.

Any problem (import error, misspelled hook, bad hookimpl signature, invalid provider class,
duplicate code, incompatible contract, failing constructor) raises
:class:`~plugins.provider.PluginStartupError` whose message names the plugin.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pluggy

from plugins import hookspecs
from plugins.hookspecs import hookimpl
from plugins.provider import (
    CONTRACT_VERSION,
    Limits,
    PayoutProvider,
    PluginStartupError,
    contract_compatible,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRYPOINT_GROUP",
    "collect_providers",
    "describe_plugin",
    "get_plugin_manager",
    "provider_class_problems",
]

log = logging.getLogger(__name__)

#: Entry-point group third-party (and built-in) provider packages register in.
ENTRYPOINT_GROUP = "cashback.payment_providers"
#: Internal plugins registered first in every manager, as import specs.
DEFAULT_PLUGINS: tuple[str, ...] = ("plugins.manager:STATUS_CHANGE_LOG",)

_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class _StatusChangeLog:
    """Core default: one log line per payout transition (the minimal audit sink)."""

    @hookimpl(trylast=True)
    def payout_status_changed(self, payout_id: int, provider_code: str, old: str, new: str) -> None:
        log.info("Payout %s: %s -> %s (provider %s)", payout_id, old, new, provider_code)


STATUS_CHANGE_LOG = _StatusChangeLog()


# --------------------------------------------------------------------------- the manager

def get_plugin_manager(load_entrypoints: bool = True,
                       plugins: Iterable[object] | None = None) -> pluggy.PluginManager:
    """A ``cashback`` plugin manager with hookspecs, default and external plugins registered
    and checked (see the module docstring for the loading order).

    :param load_entrypoints: scan the :data:`ENTRYPOINT_GROUP` entry points (ignored when
        ``$CASHBACK_PLUGINS`` is set).
    :param plugins: extra plugins: module objects, instances, or ``"module[:attr]"`` specs.
    :raises PluginStartupError: naming the plugin at fault.
    """
    pm = pluggy.PluginManager("cashback")
    pm.add_hookspecs(hookspecs)
    for spec in DEFAULT_PLUGINS:
        _register(pm, _import_spec(spec), spec)

    selected = os.environ.get("CASHBACK_PLUGINS")
    if selected is not None:
        for spec in (part.strip() for part in selected.split(",")):
            if spec:
                _register(pm, _import_spec(spec), spec)
    elif load_entrypoints:
        _load_entrypoints(pm)

    for plugin in plugins or ():
        if isinstance(plugin, str):
            _register(pm, _import_spec(plugin), plugin)
        else:
            _register(pm, plugin, None)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginStartupError(f"{describe_plugin(pm, exc.plugin)}: {exc}") from exc

    if os.environ.get("CASHBACK_TRACE_HOOKS", "") not in ("", "0"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


def _import_spec(spec: str) -> object:
    module_name, _, attribute = spec.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # ImportError, AttributeError, or any error the module raises
        raise PluginStartupError(f"plugin {spec!r} cannot be imported: {exc!r}") from exc
    return obj


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginStartupError(f"{describe_plugin(pm, plugin, name)}: {exc}") from exc
    except ValueError as exc:  # already registered
        raise PluginStartupError(f"{describe_plugin(pm, plugin, name)}: {exc}") from exc


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    try:
        pm.load_setuptools_entrypoints(ENTRYPOINT_GROUP)
    except Exception as exc:
        # pluggy loads entry points in this same order and stops at the first failure,
        # so the culprit is the first one not registered yet.
        culprit = "an unidentified entry point"
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group == ENTRYPOINT_GROUP and not pm.has_plugin(ep.name) \
                        and not pm.is_blocked(ep.name):
                    culprit = (f"plugin {ep.name!r} (entry point {ep.value!r} of distribution "
                               f"{dist.metadata['Name']} {dist.version})")
                    break
            else:
                continue
            break
        raise PluginStartupError(f"{culprit} failed to load: {exc}") from exc


def describe_plugin(pm: pluggy.PluginManager, plugin: object, name: str | None = None) -> str:
    """``plugin 'name' (module m, distribution d 1.0)``: how startup errors name a plugin."""
    name = name or pm.get_name(plugin) or pm.get_canonical_name(plugin)
    module = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__module__
    parts = [f"module {module}"]
    for registered, dist in pm.list_plugin_distinfo():
        if registered is plugin:
            parts.append(f"distribution {dist.project_name} {dist.version}")
    return f"plugin {name!r} ({', '.join(parts)})"


# --------------------------------------------------------------------------- providers

def provider_class_problems(cls: object) -> list[str]:
    """Everything wrong with a class returned by ``register_payout_providers`` (empty: fine)."""
    if not (inspect.isclass(cls) and issubclass(cls, PayoutProvider)):
        return [f"{cls!r} is not a subclass of plugins.PayoutProvider"]
    problems: list[str] = []
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        problems.append(f"abstract methods not implemented: {missing}")

    def attr(name: str) -> Any:
        value = getattr(cls, name, None)
        if value is None:
            problems.append(f"missing attribute {name!r}")
        return value

    code = attr("code")
    if code is not None and not (isinstance(code, str) and _CODE_RE.match(code)):
        problems.append(f"code {code!r} must match {_CODE_RE.pattern}")
    names = attr("verbose_name")
    if names is not None and not (isinstance(names, Mapping)
                                  and all(isinstance(names.get(lang), str) and names.get(lang)
                                          for lang in ("ru", "en"))):
        problems.append(f"verbose_name {names!r} must map 'ru' and 'en' to non-empty strings")
    currency = attr("currency")
    if currency is not None and not (isinstance(currency, str) and _CURRENCY_RE.match(currency)):
        problems.append(f"currency {currency!r} must be an ISO 4217 code like 'RUB'")
    limits = attr("limits")
    if limits is not None and not isinstance(limits, Limits):
        problems.append(f"limits {limits!r} must be a plugins.Limits (Decimal min/max)")
    version = attr("contract_version")
    if version is not None and not (isinstance(version, str)
                                    and contract_compatible(version, CONTRACT_VERSION)):
        problems.append(f"contract_version {version!r} is not compatible with the core's "
                        f"{CONTRACT_VERSION!r} (same major, minor not newer)")
    for flag in ("supports_status_query", "supports_callbacks", "supports_balance"):
        if not isinstance(getattr(cls, flag, None), bool):
            problems.append(f"{flag} must be a bool")
    places = getattr(cls, "amount_places", None)
    if isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= 8:
        problems.append("amount_places must be an int between 0 and 8")
    elif isinstance(limits, Limits) and any(
            -int(amount.as_tuple().exponent) > places
            for amount in (limits.min_amount, limits.max_amount)
            if isinstance(amount, Decimal) and isinstance(amount.as_tuple().exponent, int)):
        problems.append(f"limits {limits} have more than amount_places={places} places")
    return problems


def collect_providers(pm: pluggy.PluginManager,
                      settings_by_code: Mapping[str, Mapping[str, Any]] | None = None,
                      ) -> dict[str, PayoutProvider]:
    """Call ``register_payout_providers`` on every plugin, validate each class and build it.

    :param settings_by_code: settings per provider code, passed to ``cls.from_settings``;
        a provider without an entry gets its defaults.
    :returns: ``{code: provider instance}``, in registration order.
    :raises PluginStartupError: naming the plugin, the class and the problem.
    """
    settings_by_code = settings_by_code or {}
    hook = pm.hook.register_payout_providers
    plugins_with_impl: list[object] = []
    for impl in hook.get_hookimpls():  # in registration order (trylast first, tryfirst last)
        if not any(impl.plugin is seen for seen in plugins_with_impl):
            plugins_with_impl.append(impl.plugin)
    providers: dict[str, PayoutProvider] = {}
    owners: dict[str, str] = {}
    for plugin in plugins_with_impl:
        who = describe_plugin(pm, plugin)
        others = [p for p in plugins_with_impl if p is not plugin]
        try:
            returned = [cls for batch in pm.subset_hook_caller(hook.name, others)()
                        for cls in (batch or ())]
        except Exception as exc:
            raise PluginStartupError(f"{who}: register_payout_providers() failed: {exc!r}") from exc
        for cls in returned:
            label = (f"{cls.__module__}.{cls.__qualname__}" if inspect.isclass(cls)
                     else repr(cls))
            problems = provider_class_problems(cls)
            if problems:
                raise PluginStartupError(f"{who}: provider class {label}: " + "; ".join(problems))
            if cls.code in owners:
                raise PluginStartupError(f"{who}: provider class {label}: code {cls.code!r} is "
                                         f"already registered by {owners[cls.code]}")
            try:
                providers[cls.code] = cls.from_settings(settings_by_code.get(cls.code, {}))
            except Exception as exc:
                raise PluginStartupError(f"{who}: provider {cls.code!r} cannot be built from "
                                         f"its settings: {exc!r}") from exc
            owners[cls.code] = who
    for code in settings_by_code.keys() - providers.keys():
        log.warning("Settings given for payout provider %r, but no plugin provides it", code)
    return providers
