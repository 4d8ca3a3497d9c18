"""Checks against live Pluvo: token, scopes, the schema the engine relies on, categories.

The token is fetched on its own (not as a side effect of the first query) so that
"wrong credentials" and "the API rejects our documents" stay separate lines with
separate remedies. The schema comes from standard introspection; every document
the engine sends is then validated against it locally, which costs one request
however many operations there are, and sends no mutation.
"""

from __future__ import annotations

from collections.abc import Mapping

from graphql import GraphQLError, GraphQLSchema, build_client_schema, get_introspection_query

from sync.commands.doctor.checks import CheckResult, fail, ok, skip, warn
from sync.commands.doctor.documents import (
    MEMBERSHIP_LABELS,
    category_problems,
    choose_membership,
    mapped_category_count,
    read_documents,
    validate_documents,
    write_documents,
)
from sync.config import Config
from sync.config.pluvo import DEFAULT_SCOPES, PluvoConfig
from sync.core.mapping.spec import MappingSpec
from sync.errors import PluvoError
from sync.pluvo.aiohttp_transport import AiohttpTransport
from sync.pluvo.auth import TokenProvider
from sync.pluvo.client import PluvoClient
from sync.pluvo.http import safe_url

NEEDED_SCOPES: tuple[str, ...] = tuple(DEFAULT_SCOPES)
"""What the engine's operations need (updateExtraCategoryValues' scope is undocumented,
so both users.write and extra_categories.write are asked for)."""

DOCTOR_MAX_RETRIES = 1
"""A diagnosis should answer in seconds, not wait out a run's full retry budget."""


def _quick(config: PluvoConfig) -> PluvoConfig:
    return config.model_copy(update={"max_retries": min(config.max_retries, DOCTOR_MAX_RETRIES)})


async def check_pluvo(config: Config, mappings: Mapping[str, MappingSpec]) -> list[CheckResult]:
    pluvo = _quick(config.pluvo)
    token_result, granted = await _check_token(pluvo)
    results = [token_result]
    if token_result.failed:
        reason = "no token"
        names = ["scopes", "schema", "membership results", "extra categories"]
        return results + [skip(name, reason) for name in names]
    results.append(scope_result(pluvo, granted))
    async with PluvoClient(pluvo) as client:
        schema_result, schema = await _introspect(client)
        if schema is None:
            results.append(schema_result)
            results.append(skip("membership results", "no live schema"))
        else:
            results.append(_check_documents(schema, config))
            results.extend(_check_membership(schema, pluvo))
        results.append(await _check_categories(client, mappings))
    return results


async def _check_token(config: PluvoConfig) -> tuple[CheckResult, frozenset[str] | None]:
    where = safe_url(config.token_url)
    transport = AiohttpTransport(config)
    provider = TokenProvider(config, transport)
    try:
        await provider.token()
    except PluvoError as exc:
        remedy = exc.hint or "check pluvo.url and that Pluvo is reachable from this host"
        return fail("token", f"{where}: {exc.message}", remedy), None
    finally:
        await transport.aclose()
    granted = provider.granted_scopes
    shown = " ".join(sorted(granted)) if granted is not None else "(scopes not reported)"
    return ok("token", f"obtained for client {config.client_id!r}; granted {shown}"), granted


def scope_result(config: PluvoConfig, granted: frozenset[str] | None) -> CheckResult:
    unrequested = [s for s in NEEDED_SCOPES if s not in config.scopes]
    if granted is None:
        if unrequested:
            return fail(
                "scopes",
                f"pluvo.scopes lacks {' '.join(unrequested)}",
                "add them to pluvo.scopes",
            )
        return warn(
            "scopes",
            "Pluvo's token answer does not list the granted scopes; they cannot be verified",
            f"make sure the API client has {' '.join(NEEDED_SCOPES)}",
        )
    missing = [s for s in NEEDED_SCOPES if s not in granted]
    if not missing:
        return ok("scopes", f"every needed scope granted ({' '.join(NEEDED_SCOPES)})")
    remedy = f"ask Pluvo to grant {' '.join(missing)} to the API client {config.client_id!r}"
    if unrequested:
        remedy = f"add {' '.join(unrequested)} to pluvo.scopes and {remedy}"
    return fail("scopes", f"missing {' '.join(missing)}", remedy)


async def _introspect(client: PluvoClient) -> tuple[CheckResult, GraphQLSchema | None]:
    try:
        data = await client.execute(get_introspection_query())
    except PluvoError as exc:
        return fail("schema", f"introspection failed: {exc}", "check pluvo.url"), None
    try:
        schema = build_client_schema(data)  # type: ignore[arg-type]
    except (GraphQLError, TypeError, KeyError) as exc:
        return fail("schema", f"introspection answer is not a usable schema: {exc}"), None
    return ok("schema", "introspected"), schema


def _check_documents(schema: GraphQLSchema, config: Config) -> CheckResult:
    docs = (
        write_documents(
            leaver_action=config.leavers.action, archive_method=config.leavers.archive_method
        )
        + read_documents()
    )
    problems = validate_documents(schema, docs)
    if not problems:
        fields = len({d.field for d in docs})
        return ok(
            "schema",
            f"the live schema accepts all {len(docs)} engine documents ({fields} fields)",
            *(f"{d.field} ({d.purpose})" for d in docs),
        )
    first, *rest = problems
    return fail(
        "schema",
        f"{first} (used to {first.purpose})",
        "the live API differs from what the engine sends: report it with this output",
        *(f"{p} (used to {p.purpose})" for p in rest),
    )


def _check_membership(schema: GraphQLSchema, config: PluvoConfig) -> list[CheckResult]:
    choice = choose_membership(schema)
    if choice.fields is None:
        details = [f"{fields}: {p}" for fields, ps in choice.rejected.items() for p in ps]
        return [
            fail(
                "membership results",
                "the live schema accepts neither addedIds... nor addedRefs... results",
                "the live API differs from both documented generations: report it",
                *details,
            )
        ]
    note = ""
    if choice.rejected:
        skipped = ", ".join(MEMBERSHIP_LABELS[f].split()[0] for f in choice.rejected)
        note = f"; {skipped} not offered"
    results = [ok("membership results", f"{choice.label}{note}")]
    if config.membership_result_fields != choice.fields:
        results.append(
            fail(
                "membership setting",
                f"pluvo.membership_result_fields is {config.membership_result_fields!r}, "
                f"but the live schema only accepts {choice.label}",
                f"set pluvo.membership_result_fields: {choice.fields}",
            )
        )
    return results


async def _check_categories(
    client: PluvoClient, mappings: Mapping[str, MappingSpec]
) -> CheckResult:
    wanted = mapped_category_count(mappings)
    if wanted == 0:
        return ok("extra categories", "no mapping writes extra categories")
    try:
        categories = await client.list_extra_categories("USER")
    except PluvoError as exc:
        return fail("extra categories", f"cannot list them: {exc.message}", exc.hint)
    problems = category_problems(categories, mappings)
    if problems:
        first, *rest = problems
        return fail(
            "extra categories",
            first,
            "create the category/option in Pluvo or fix the mapping's `extra:` entry",
            *rest,
        )
    return ok("extra categories", f"all {wanted} mapped categories exist with matching types")
