"""Online key rotation: re-seal every sealed column onto the primary key, in batches.

Each row is updated with compare-and-swap on its old ciphertexts, so a refresh that rewrites a
token while rotation runs wins and is never overwritten; that row is picked up again on the
next pass. Rows that are already on the primary are left alone, so a rerun is cheap.
"""
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, update

from portal.crypto import SealError, key_id_of
from portal.extensions import db
from portal.models import Sealed


@dataclass
class RotationReport:
    resealed: int = 0
    retried: int = 0
    failed: list = field(default_factory=list)  # (table, id, reason) that would not open

    def as_dict(self):
        return {"resealed": self.resealed, "retried": self.retried, "failed": len(self.failed)}


def sealed_models():
    """Every mapped model that declares sealed columns."""
    return sorted((m.class_ for m in db.Model.registry.mappers
                   if issubclass(m.class_, Sealed) and m.class_.__sealed__), key=lambda c: c.__tablename__)


def key_usage():
    """How many sealed values each key id seals, over every sealed column: ``{key_id: count}``."""
    counts = Counter()
    for model in sealed_models():
        for column in model.__sealed__:
            query = select(getattr(model, column)).where(getattr(model, column).is_not(None))
            for value in db.session.scalars(query.execution_options(yield_per=1000)):
                try:
                    counts[key_id_of(value)] += 1
                except SealError:
                    counts["(not a sealed value)"] += 1
    return dict(counts)


def stale_keys_in_use(keyring):
    """Key ids other than the primary that still seal at least one value."""
    return sorted(set(key_usage()) - {keyring.primary_id})


def rotate(keyring, batch_size=200, max_passes=5):
    """Re-seal all rows not on the primary key; returns a RotationReport."""
    report = RotationReport()
    for model in sealed_models():
        for _ in range(max_passes):
            if not _rotate_model(model, keyring, batch_size, report):
                break
    return report


def _rotate_model(model, keyring, batch_size, report):
    """One pass over ``model``; True if some row lost a race and needs another pass."""
    lost_race = False
    last_id = 0
    prefix = f"v1.{keyring.primary_id}."
    stale = or_(*[and_(getattr(model, c).is_not(None), ~getattr(model, c).startswith(prefix)) for c in model.__sealed__])
    while True:
        _begin_batch()
        rows = db.session.scalars(select(model).where(model.id > last_id, stale).order_by(model.id).limit(batch_size)).all()
        if not rows:
            db.session.commit()
            break
        for row in rows:
            last_id = row.id
            outcome = _reseal_row(model, row, keyring, report)
            lost_race = lost_race or outcome == "lost"
        db.session.commit()
        db.session.expunge_all()
    return lost_race


def _begin_batch():
    """A new transaction per batch. On SQLite it takes the write lock before reading the batch:
    a deferred read whose snapshot a concurrent refresh moved past cannot write afterwards
    ("database is locked" at once), while a waiting BEGIN IMMEDIATE just takes its turn."""
    db.session.commit()
    if db.engine.dialect.name == "sqlite":
        db.session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def _reseal_row(model, row, keyring, report):
    old, new = {}, {}
    for column in model.__sealed__:
        value = getattr(row, column)
        if value is None:
            continue
        old[column] = value
        try:
            plaintext = keyring.open(value, row.sealing_context(column))
        except SealError as error:
            report.failed.append((model.__tablename__, row.id, str(error)))
            return "failed"
        new[column] = keyring.seal(plaintext, row.sealing_context(column))
    conditions = [model.id == row.id] + [getattr(model, c) == v for c, v in old.items()]
    result = db.session.execute(update(model).where(*conditions).values(**new).execution_options(synchronize_session=False))
    if result.rowcount == 1:
        report.resealed += 1
        return "resealed"
    report.retried += 1
    return "lost"
