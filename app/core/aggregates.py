"""Federations' metadata aggregates: which of their SPs we register, what a refresh changes,
and when each is read again (docs/saml.md, "Federation metadata").

The door (saml/aggregate.py) fetches an aggregate and checks its signature and validUntil; what
it read arrives here as a `Loaded`. Nothing here fetches or parses XML."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from app.core import audit
from app.core import service_providers as sps
from app.core.context import Context, Origin
from app.i18n import _
from app.models import MetadataAggregate, ServiceProvider

# A node that claimed an aggregate has this long to fetch it before another node may try.
CLAIM_SECONDS = 600
# After a refused download, the next try comes this soon (or at the usual interval if shorter).
RETRY_SECONDS = 600


class AggregateError(ValueError):
    """The message is safe to show."""


@dataclass
class Loaded:
    """An aggregate as the door read it, its signature verified: its validUntil, its
    cacheDuration (None when it gives none), the SPs it lists (entities whose own validUntil
    passed are already left out), and a brief reason for each entity that could not be read."""

    valid_until: datetime
    cache_duration: timedelta | None
    entities: list[sps.Registration] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class Report:
    """What loading an aggregate did, for the operator."""

    url: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    own: list[str] = field(default_factory=list)       # registered on their own: left alone
    elsewhere: list[str] = field(default_factory=list)  # from another aggregate: left alone
    filtered: int = 0                                   # not in the wanted categories
    skipped: list[str] = field(default_factory=list)    # could not be read or registered

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated",
                 f"{self.unchanged} unchanged", f"{len(self.removed)} removed"]
        if self.filtered:
            parts.append(f"{self.filtered} not in the categories")
        if self.own:
            parts.append(f"{len(self.own)} registered on their own, not overwritten")
        if self.elsewhere:
            parts.append(f"{len(self.elsewhere)} registered by another aggregate")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return f"{self.url}: " + ", ".join(parts)

    def details(self) -> list[str]:
        """One line per SP left alone or skipped, and why."""
        return ([f"not overwritten (registered on its own): {e}" for e in self.own]
                + [f"not taken (registered by another aggregate): {e}" for e in self.elsewhere]
                + [f"skipped: {reason}" for reason in self.skipped])


def find(ctx: Context, url: str) -> MetadataAggregate | None:
    return ctx.db.scalar(select(MetadataAggregate).where(MetadataAggregate.url == url))


def get(ctx: Context, aggregate_id: int) -> MetadataAggregate | None:
    return ctx.db.get(MetadataAggregate, aggregate_id)


def categories(aggregate: MetadataAggregate) -> list[str]:
    return json.loads(aggregate.categories)


def listing(ctx: Context) -> list[tuple[MetadataAggregate, int]]:
    """Every aggregate with the number of SPs registered from it."""
    counts = (select(ServiceProvider.aggregate_id, func.count().label("n"))
              .group_by(ServiceProvider.aggregate_id).subquery())
    rows = ctx.db.execute(
        select(MetadataAggregate, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.aggregate_id == MetadataAggregate.id)
        .order_by(MetadataAggregate.url))
    return [(aggregate, int(n)) for aggregate, n in rows]


def add(ctx: Context, origin: Origin, url: str, cert_pem: str, wanted: list[str], loaded: Loaded,
        *, replace: bool = False) -> Report:
    """Register the aggregate at `url` (pinned to `cert_pem`, keeping the SPs with one of the
    `wanted` entity categories, every SP when empty) and the SPs of what was read from it.
    With `replace`, an aggregate already added takes the new certificate and categories."""
    aggregate = find(ctx, url)
    if aggregate is not None and not replace:
        raise AggregateError(_("the aggregate %(url)s is already added (use --replace to change "
                               "its certificate or categories, `um2fa sp refresh --all` to read "
                               "it again)", url=url))
    if aggregate is None:
        aggregate = MetadataAggregate(url=url, created_at=ctx.now(), next_refresh_at=ctx.now(),
                                      last_error="")
        ctx.db.add(aggregate)
    aggregate.cert_pem = cert_pem
    aggregate.categories = json.dumps(sorted(set(wanted)))
    ctx.db.flush()
    return apply(ctx, origin, aggregate, loaded)


def apply(ctx: Context, origin: Origin, aggregate: MetadataAggregate, loaded: Loaded) -> Report:
    """Make the aggregate's SPs what `loaded` lists (in the caller's one transaction): new ones
    added, changed ones updated (the operator's settings for them kept), gone ones removed. An
    SP registered on its own, or by another aggregate, is left alone and reported. An older
    copy than the one loaded before (an earlier validUntil: replayed by whoever can alter the
    download) is refused with AggregateError: it could bring back SPs the federation removed."""
    if aggregate.valid_until is not None and loaded.valid_until < aggregate.valid_until:
        newer, older = (when.strftime("%Y-%m-%d %H:%M") for when in (loaded.valid_until,
                                                                     aggregate.valid_until))
        raise AggregateError(
            _("the aggregate is older than the copy loaded before (validUntil %(loaded)sZ, "
              "before %(before)sZ)", loaded=newer, before=older))
    wanted = set(categories(aggregate))
    current = {sp.entity_id: sp for sp in ctx.db.scalars(
        select(ServiceProvider).where(ServiceProvider.aggregate_id == aggregate.id))}
    report = Report(url=aggregate.url, skipped=list(loaded.skipped))
    seen: set[str] = set()
    for reg in loaded.entities:
        if reg.entity_id in seen:
            report.skipped.append(f"{reg.entity_id}: listed more than once")
            continue
        seen.add(reg.entity_id)
        if wanted and not wanted & set(reg.entity_categories):
            report.filtered += 1
            continue
        try:
            sps.check(reg)
        except sps.ServiceProviderError as exc:
            report.skipped.append(f"{reg.entity_id}: {exc}")
            continue
        _take(ctx, aggregate, current.pop(reg.entity_id, None), reg, report)
    for entity_id, sp in sorted(current.items()):
        ctx.db.delete(sp)
        report.removed.append(entity_id)
    aggregate.valid_until = loaded.valid_until
    aggregate.refreshed_at = ctx.now()
    aggregate.next_refresh_at = next_refresh(ctx, loaded)
    aggregate.last_error = ""
    ctx.db.flush()
    audit.record(ctx, origin, "sp.aggregate", "ok", detail=report.summary()[:500])
    return report


def _take(ctx: Context, aggregate: MetadataAggregate, sp: ServiceProvider | None,
          reg: sps.Registration, report: Report) -> None:
    """Add or update one SP of the aggregate (`sp`: its row from this aggregate, if any)."""
    if sp is None:
        existing = sps.lookup(ctx, reg.entity_id)
        if existing is not None:
            (report.own if existing.aggregate_id is None else report.elsewhere).append(
                reg.entity_id)
            return
        sp = ServiceProvider(entity_id=reg.entity_id, created_at=ctx.now(),
                             aggregate_id=aggregate.id)
        ctx.db.add(sp)
        report.added.append(reg.entity_id)
    elif sp.metadata_xml != reg.metadata_xml:
        report.updated.append(reg.entity_id)
    else:
        report.unchanged += 1
    sps.fill(sp, reg)


def next_refresh(ctx: Context, loaded: Loaded) -> datetime:
    """now + the shorter of the aggregate's cacheDuration and the refresh setting, never
    later than its validUntil."""
    interval = timedelta(seconds=ctx.settings.saml_aggregate_refresh_seconds)
    if loaded.cache_duration is not None and loaded.cache_duration > timedelta(0):
        interval = min(interval, loaded.cache_duration)
    return min(ctx.now() + interval, loaded.valid_until)


def refused(ctx: Context, origin: Origin, aggregate_id: int, reason: str) -> None:
    """A download that was refused changes none of the aggregate's SPs: it is recorded, and
    tried again soon."""
    aggregate = get(ctx, aggregate_id)
    if aggregate is None:
        return
    aggregate.last_error = f"{ctx.now():%Y-%m-%d %H:%M:%S}Z {reason}"[:1000]
    retry = min(RETRY_SECONDS, ctx.settings.saml_aggregate_refresh_seconds)
    aggregate.next_refresh_at = ctx.now() + timedelta(seconds=retry)
    audit.record(ctx, origin, "sp.aggregate", "refused", detail=f"{aggregate.url}: {reason}"[:500])


def due(ctx: Context, *, every: bool = False) -> list[int]:
    """The aggregates to read now (all of them with `every`), oldest first."""
    query = select(MetadataAggregate.id).order_by(MetadataAggregate.next_refresh_at)
    if not every:
        query = query.where(MetadataAggregate.next_refresh_at <= ctx.now())
    return list(ctx.db.scalars(query))


def claim(ctx: Context, aggregate_id: int, *, force: bool = False) -> bool:
    """Claim an aggregate for this node to fetch: one conditional UPDATE moves its
    next_refresh_at CLAIM_SECONDS ahead, so another node (or thread) checking at the same time
    finds it no longer due. `force` (an operator's `--all`) claims it whenever it is due."""
    query = update(MetadataAggregate).where(MetadataAggregate.id == aggregate_id)
    if not force:
        query = query.where(MetadataAggregate.next_refresh_at <= ctx.now())
    result = ctx.db.execute(query.values(
        next_refresh_at=ctx.now() + timedelta(seconds=CLAIM_SECONDS)))
    return result.rowcount == 1


def remove(ctx: Context, origin: Origin, url: str) -> int:
    """Remove the aggregate and every SP registered from it; how many SPs went."""
    aggregate = find(ctx, url)
    if aggregate is None:
        raise AggregateError(_("no such aggregate: %(url)s", url=url))
    # its SPs first, by one statement (the foreign key's ON DELETE CASCADE would do it too,
    # behind the session's back)
    gone = ctx.db.execute(delete(ServiceProvider).where(
        ServiceProvider.aggregate_id == aggregate.id)).rowcount
    ctx.db.delete(aggregate)
    ctx.db.flush()
    audit.record(ctx, origin, "sp.aggregate", "removed", detail=f"{url}: {gone} SPs")
    return gone
