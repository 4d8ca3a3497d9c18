"""One chunk of calls as aliased batches: rendered, sent, split, salvaged, read back.

Variables. A batch's arguments travel as variables typed from a schema (the bundled
one, or `schema=` from live introspection), so batches of one shape are one document
text and Pluvo's parse/validate cost is paid once per shape, not once per batch; see
ops.render_batch. Variable names carry the alias, which lets a refused document be
salvaged: a value Pluvo cannot coerce fails only its call, and refused variable types
switch those fields to literals. `pluvo.inline_arguments` sends literals throughout.

Sizes. A batch Pluvo refuses as too large goes again in halves, and the size that
passed is kept for the rest of the client's life.

Errors. A GraphQL error whose `path[0]` is an alias is that call's RecordError; the
other calls of the batch keep their data. A failure of the whole request (from
sync.pluvo.channel) is every call's error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from sync.errors import ConflictError, FatalError, PluvoError, RecordError
from sync.pluvo import ops
from sync.pluvo.channel import (
    Channel,
    Rejected,
    TooLarge,
    code_of,
    errors_of,
    short_reason,
    size_refusal,
)
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult
from sync.pluvo.schema import ArgumentTypes

log = logging.getLogger("sync.pluvo")

_VARIABLE = re.compile(r"\$a(\d+)_")
# A value Pluvo could not coerce. graphql-core 3.3 says "has invalid value", 3.2 and 2
# (older graphene) "got invalid value"; a null for a non-null is "was not provided".
_VARIABLE_VALUE = re.compile(
    r"\$a(\d+)_\w*['\"]? (?:(?:has|got) invalid value|of required type .* was not provided)"
)


class Batches:
    """How a client's calls become requests; `batch_limit` and `argument_types` are
    what earlier refusals taught it, kept for the client's life."""

    def __init__(
        self, channel: Channel, argument_types: ArgumentTypes | None, batch_limit: int
    ) -> None:
        self.channel = channel
        self.argument_types = argument_types
        self.batch_limit = batch_limit
        """Calls per request; halved for good when Pluvo refuses a batch as too large."""

    async def run_chunk(self, chunk: list[Call]) -> list[CallResult]:
        """One result per call of the chunk, in order; never raises a PluvoError."""
        if chunk[0].operation == "mutation":
            self.channel.counters.mutations += len(chunk)
        results: list[CallResult] = []
        while len(results) < len(chunk):  # the limit may shrink while this chunk goes out
            start = len(results)
            results += await self.send(chunk[start : start + self.batch_limit])
        return results

    async def split(self, chunk: list[Call], exc: TooLarge) -> list[CallResult]:
        """A batch refused for its size goes again in halves, down to single calls;
        the size that passes is kept for the rest of the run. A single call still
        refused is that call's record error, not the run's."""
        if len(chunk) == 1:
            error = RecordError(
                f"{chunk[0].field}: Pluvo refuses this call even on its own as too large "
                f"({exc.message})"
            )
            return [CallResult(chunk[0], None, error)]
        half = (len(chunk) + 1) // 2
        if self.batch_limit > len(chunk) // 2:
            self.batch_limit = max(1, len(chunk) // 2)
            log.warning(
                "Pluvo refused a batch of %d calls as too large; sending at most %d per "
                "request from now on (set pluvo.batch_size: %d to start there)",
                len(chunk),
                self.batch_limit,
                self.batch_limit,
            )
        first = await self.send(chunk[:half])
        return first + await self.send(chunk[half:])

    async def send(self, chunk: list[Call]) -> list[CallResult]:
        """One request for the chunk, and whatever its refusal makes necessary."""
        operation = chunk[0].operation
        fields = sorted({c.field for c in chunk})
        label = f"{operation} {'+'.join(fields)} x{len(chunk)}"
        document, variables = ops.render_batch(chunk, types=self.argument_types, name="SyncBatch")
        try:
            body = await self.channel.request(document, variables, label, fields, chunk)
        except TooLarge as exc:
            return await self.split(chunk, exc)
        except Rejected as exc:
            return await self._rejected(chunk, exc, bool(variables))
        except PluvoError as exc:
            if not isinstance(exc, FatalError):  # a fatal one ends the run, said once there
                log.warning("%s failed: %s", label, exc)
            return [CallResult(c, None, exc) for c in chunk]
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        own: dict[int, RecordError] = {}
        stray: list[Mapping[str, Any]] = []
        for error in errors_of(body):
            path = error.get("path")
            index = ops.index_of_alias(path[0]) if isinstance(path, list) and path else None
            if index is not None and index < len(chunk):
                own.setdefault(index, record_error(chunk[index].field, error))
            else:
                stray.append(error)
        if stray and not any(data.get(ops.alias_for(i)) is not None for i in range(len(chunk))):
            if size_refusal(stray):
                too_large = TooLarge(f"{label}: Pluvo refused the request as too large")
                return await self.split(chunk, too_large)
            rejected = Rejected(
                f"{label}: Pluvo rejected the document ({short_reason(stray[0])})", stray
            )
            return await self._rejected(chunk, rejected, bool(variables))
        results = []
        for i, call in enumerate(chunk):
            alias = ops.alias_for(i)
            if i in own:
                results.append(CallResult(call, None, own[i]))
            elif alias in data:
                results.append(CallResult(call, data[alias]))
            else:
                reason = short_reason(stray[0]) if stray else "no result in the answer"
                results.append(CallResult(call, None, RecordError(f"{call.field}: {reason}")))
        return results

    async def _rejected(
        self, chunk: list[Call], exc: Rejected, had_variables: bool
    ) -> list[CallResult]:
        """Pluvo refused a whole document: salvage what variables make salvageable.

        Variables are named after their alias, so a value Pluvo could not coerce
        (`Variable '$a3_user' has invalid value at .language`) is that call's record
        error, and the other calls are sent again without it. Refused variable *types*
        (a live schema naming its inputs differently) are fixed by literals, which need
        names only: the fields concerned go literal for the rest of the client's life.
        Anything else (a field Pluvo lacks) fails the batch as before.
        """
        if had_variables and self.argument_types is not None and exc.errors:
            bad: dict[int, RecordError] = {}
            retype: set[str] = set()
            for error in exc.errors:
                message = str(error.get("message") or "")
                value = _VARIABLE_VALUE.search(message)
                named = _VARIABLE.search(message)
                if value and int(value.group(1)) < len(chunk):
                    index = int(value.group(1))
                    bad.setdefault(index, record_error(chunk[index].field, error))
                elif named and int(named.group(1)) < len(chunk):
                    retype.add(chunk[int(named.group(1))].field)
                elif "Unknown type" in message:
                    retype.update(c.field for c in chunk)
                else:
                    retype = set()
                    bad = {}
                    break
            if retype:
                log.warning(
                    "Pluvo refused the variable types of %s (%s); sending %s with literals "
                    "from now on (pluvo.inline_arguments: true, or `doctor`, settles this)",
                    "+".join(sorted(retype)),
                    short_reason(exc.errors[0]),
                    "them" if len(retype) > 1 else "it",
                )
                self.argument_types = self.argument_types.without(frozenset(retype))
                return await self.send(chunk)
            if bad:
                rest = [i for i in range(len(chunk)) if i not in bad]
                again = await self.send([chunk[i] for i in rest]) if rest else []
                results: list[CallResult | None] = [None] * len(chunk)
                for index, refused in bad.items():
                    results[index] = CallResult(chunk[index], None, refused)
                for index, result in zip(rest, again, strict=True):
                    results[index] = result
                return [r for r in results if r is not None]
        log.warning("%s", exc)
        return [CallResult(c, None, exc) for c in chunk]


def record_error(field: str, error: Mapping[str, Any]) -> RecordError:
    """One alias's error, typed: callers decide by the class, never by the text.

    Pluvo documents no code for "already exists"; the sandbox says `Conflict`, and a
    message saying so is read the same way, here at the boundary and nowhere else.
    """
    code = code_of(error) or None
    message = f"{field}: {short_reason(error)}"
    if (code or "").lower() == "conflict" or "already exists" in message.lower():
        return ConflictError(message, code=code)
    return RecordError(message, code=code)


__all__ = ["Batches", "record_error"]
