"""Staged, atomic, recoverable partitioned output.

Layout under the output root (Spark and Hive readers ignore names starting with ``_``)::

    out/ds=2026-11-28/part-*.parquet        live data, one directory per partition
    out/ds=2026-11-28/_SUCCESS               run id that committed this partition
    out/_SUCCESS                             run id of the last successful commit
    out/_batchinfer/lock                     held by the running job (run id, host, pid)
    out/_batchinfer/staging/<run_id>/        Spark writes here first
    out/_batchinfer/journal/<run_id>.json    commit intent; present only while committing
    out/_batchinfer/trash/<run_id>/          previous partitions, until the commit completes
    out/_batchinfer/runs/<run_id>/           manifest.json, report, check results

Commit protocol: the scored rows are written to staging by Spark; only after every check
passed does the driver write the journal, then for each partition rename the live directory
into trash and the staged directory into place (each rename is atomic on local disks and
HDFS), then mark the journal committed and delete trash. A run killed at any point leaves
either the old partition or, inside the short rename window, a journal; the next run (or
``batchinfer recover``) rolls such a half-done commit back, restoring the previous partition
byte for byte, and deletes the dead run's staging files.

On object stores (S3, GCS, ABFS) nothing is renamed: a "rename" there is a copy and a delete
per object, so the commit instead adds the staged files to the live partition under their
unique names, marks the journal ``published``, overwrites the partition's ``_SUCCESS`` with
the run id and deletes the old files (:meth:`OutputTable._add_then_delete`). Killed before
``published``, recovery deletes the added files (the previous partition is untouched, byte for
byte); after it, recovery finishes the commit. docs/storage.md says what readers see meanwhile.

The commit only moves what it owns: its own staging files, and partitions that a batchinfer run
committed before. A partition it would replace counts as batchinfer's when it holds a
``_SUCCESS`` naming a run id and nothing but ``part-*.parquet`` data files (and their ``.crc``
checksums); anything else (no marker, an extra file, a subdirectory) stops the commit with a
:class:`~batchinfer.errors.ForeignFilesError` before anything moves, unless
``output.mode: overwrite_partitions_force`` says to replace such partitions anyway.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field

from batchinfer.errors import ForeignFilesError, OutputError, OutputLockedError
from batchinfer.io.filesystem import Location, is_hidden, resolve

META = "_batchinfer"
MARKER = "_SUCCESS"
FORCE_MODE = "overwrite_partitions_force"
ADD_THEN_DELETE = "add_then_delete"  # the object-store commit (no directory rename there)
# What a committed partition holds: its marker, data files as either writer names them, checksums.
_OWNED_FILE = re.compile(r"^(_SUCCESS|part-[^/]*\.parquet|\._SUCCESS\.crc|\.part-[^/]*\.parquet\.crc)$")
# A run id as a marker holds it (batchinfer.job.new_run_id; any one-line token from older runs).
_MARKER_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*\n?$")


@dataclass
class CommitResult:
    partitions: list[dict[str, str]] = field(default_factory=list)
    rows: int = 0
    files: int = 0
    rows_by_partition: dict[str, int] = field(default_factory=dict)


def _ftype(loc: Location):
    return loc.fs.get_file_info(loc.path).type


def _exists(loc: Location) -> bool:
    from pyarrow import fs as pafs

    return _ftype(loc) != pafs.FileType.NotFound


def _write_text_atomic(loc: Location, text: str) -> None:
    parent = loc.path.rsplit("/", 1)[0]
    loc.fs.create_dir(parent, recursive=True)
    tmp = f"{loc.path}.tmp-{os.getpid()}-{time.time_ns()}"
    with loc.fs.open_output_stream(tmp) as fh:
        fh.write(text.encode())
    loc.fs.move(tmp, loc.path)


def _move_dir(fs, src: str, dst: str, atomic_rename: bool) -> None:
    """Rename a directory; on object stores (no directory rename) move its files one by one.

    There each move is a copy then a delete, so readers listing the partition during the move
    can see part of the new files next to part of the old ones (the old ones sit in trash by
    then); the marker moves last, so a partition whose ``_SUCCESS`` names this run is complete.
    """
    from pyarrow import fs as pafs

    if atomic_rename:  # local disk, HDFS
        fs.move(src, dst)
        return
    base = src.rstrip("/") + "/"
    files = [
        fi for fi in fs.get_file_info(pafs.FileSelector(src, recursive=True)) if fi.type == pafs.FileType.File
    ]
    files.sort(key=lambda fi: (fi.base_name == MARKER, fi.path))
    for fi in files:
        fs.move(fi.path, dst.rstrip("/") + "/" + fi.path[len(base) :])
    fs.delete_dir(src)


def _read_json(loc: Location) -> dict | None:
    try:
        with loc.fs.open_input_stream(loc.path) as fh:
            return json.loads(fh.read().decode())
    except (FileNotFoundError, OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputTable:
    """One output root and its ``_batchinfer`` bookkeeping."""

    def __init__(self, path: str) -> None:
        self.root = resolve(path, error=OutputError)
        self.meta = self.root.join(META)

    # ------------------------------------------------------------------ paths
    def staging(self, run_id: str) -> Location:
        return self.meta.join("staging", run_id)

    def run_dir(self, run_id: str) -> Location:
        return self.meta.join("runs", run_id)

    @property
    def lock_path(self) -> Location:
        return self.meta.join("lock")

    # ------------------------------------------------------------------ lock
    def acquire_lock(self, run_id: str, job: str) -> None:
        """Take the output lock, breaking it only when provably stale (same host, dead pid)."""
        try:
            self._acquire_lock(run_id, job)
        except OSError as exc:  # the store refused (denied, no bucket, unreachable): one line
            from batchinfer.io.storage import storage_error

            raise storage_error(self.root.uri, exc, OutputError, action="lock output") from None

    def _acquire_lock(self, run_id: str, job: str) -> None:
        info = {
            "run_id": run_id,
            "job": job,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.meta.fs.create_dir(self.meta.path, recursive=True)
        for _ in range(2):
            if self._try_create_lock(info):
                return
            holder = _read_json(self.lock_path) or {}
            if (
                holder.get("host") == info["host"]
                and isinstance(holder.get("pid"), int)
                and not _pid_alive(holder["pid"])
            ):
                # The holder died on this host (e.g. SIGKILL): its lock is provably stale.
                self.lock_path.fs.delete_file(self.lock_path.path)
                continue
            raise OutputLockedError(
                f"output {self.root.uri} locked by run {holder.get('run_id', '?')} (job {holder.get('job', '?')}, "
                f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since {holder.get('since', '?')})",
                hint=f"wait for that run to finish; if it is dead, clear the lock with "
                f"`batchinfer unlock {self.root.uri}`",
            )
        raise OutputLockedError(f"output {self.root.uri} lock could not be acquired")

    def _try_create_lock(self, info: dict) -> bool:
        data = json.dumps(info).encode()
        if self.root.is_local:
            try:
                fd = os.open(self.lock_path.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        create_new = getattr(getattr(self.lock_path.fs, "handler", None), "create_new", None)
        if create_new is not None:  # Hadoop FileSystem via the driver: create(overwrite=false)
            return create_new(self.lock_path.path, data)
        # Object stores have no exclusive create: check-then-write, documented as best effort.
        if _exists(self.lock_path):
            return False
        with self.lock_path.fs.open_output_stream(self.lock_path.path) as fh:
            fh.write(data)
        return True

    def release_lock(self, run_id: str) -> None:
        holder = _read_json(self.lock_path)
        if holder is not None and holder.get("run_id") == run_id:
            self.lock_path.fs.delete_file(self.lock_path.path)

    def lock_holder(self) -> dict | None:
        return _read_json(self.lock_path)

    def force_unlock(self) -> dict | None:
        holder = self.lock_holder()
        if _exists(self.lock_path):
            self.lock_path.fs.delete_file(self.lock_path.path)
        return holder

    # ------------------------------------------------------------------ recovery
    def recover(self, *, current_run: str | None = None) -> list[str]:
        """Roll back half-done commits and delete dead runs' staging/trash. Call with the lock held."""
        from pyarrow import fs as pafs

        actions: list[str] = []
        journal_dir = self.meta.join("journal")
        if _exists(journal_dir):
            for fi in journal_dir.fs.get_file_info(pafs.FileSelector(journal_dir.path)):
                if not fi.path.endswith(".json"):
                    continue
                journal = _read_json(journal_dir.join(fi.base_name)) or {}
                run_id = journal.get("run_id") or fi.base_name[:-5]
                if run_id == current_run:
                    continue
                if journal.get("protocol") == ADD_THEN_DELETE and journal.get("state") == "published":
                    self._roll_forward(journal)
                    _write_text_atomic(self.root.join("_SUCCESS"), run_id + "\n")
                    actions.append(f"completed the interrupted (published) commit of run {run_id}")
                elif journal.get("protocol") == ADD_THEN_DELETE and journal.get("state") == "committing":
                    self._roll_back_added(journal)
                    actions.append(f"rolled back the interrupted commit of run {run_id}")
                elif journal.get("state") == "committing":
                    self._rollback(journal)
                    actions.append(f"rolled back the interrupted commit of run {run_id}")
                self._cleanup(run_id)
                journal_dir.fs.delete_file(fi.path)
        for sub in ("staging", "trash"):
            base = self.meta.join(sub)
            if not _exists(base):
                continue
            for fi in base.fs.get_file_info(pafs.FileSelector(base.path)):
                if fi.base_name != current_run:
                    base.fs.delete_dir(fi.path)
                    actions.append(f"deleted leftover {sub} of run {fi.base_name}")
        return actions

    def _rollback(self, journal: dict) -> None:
        run_id = journal["run_id"]
        mode = journal.get("mode")
        trash = self.meta.join("trash", run_id)
        for unit in journal.get("units", []):
            rel = unit["path"]
            live = self.root.join(rel) if rel else self.root
            if mode == "append" and rel and not unit.get("had_previous"):
                if _exists(live):  # a new partition: moved in whole, with its marker
                    live.fs.delete_dir(live.path)
                continue
            if mode == "append":
                for name in unit.get("files", []):
                    f = live.join(name)
                    if _exists(f):
                        f.fs.delete_file(f.path)
                continue
            if not rel:
                self._rollback_root(journal, unit)
                continue
            old = trash.join(rel)
            if _exists(old):
                if _exists(live):
                    live.fs.delete_dir(live.path)
                live.fs.create_dir(live.path.rsplit("/", 1)[0], recursive=True)
                _move_dir(live.fs, old.path, live.path, live.atomic_rename)
            elif not unit.get("had_previous") and _exists(live):
                live.fs.delete_dir(live.path)

    def _rollback_root(self, journal: dict, unit: dict) -> None:
        """Unpartitioned output: delete new files, move the old ones back."""
        trash = self.meta.join("trash", journal["run_id"], "_root")
        for name in unit.get("files", []):
            f = self.root.join(name)
            if _exists(f):
                f.fs.delete_file(f.path)
        if _exists(trash):
            from pyarrow import fs as pafs

            for fi in trash.fs.get_file_info(pafs.FileSelector(trash.path)):
                trash.fs.move(fi.path, self.root.join(fi.base_name).path)

    def _cleanup(self, run_id: str) -> None:
        for loc in (self.staging(run_id), self.meta.join("trash", run_id)):
            if _exists(loc):
                loc.fs.delete_dir(loc.path)

    def discard(self, run_id: str) -> None:
        """Drop a run's staged output (failed gate, dry run, error)."""
        self._cleanup(run_id)

    # ------------------------------------------------------------------ commit
    def staged_units(self, run_id: str, partition_by: list[str]) -> dict[str, list]:
        """Relative partition path ('' when unpartitioned) → staged data files (FileInfo)."""
        from pyarrow import fs as pafs

        staging = self.staging(run_id)
        units: dict[str, list] = {}
        if not _exists(staging):
            return units
        base = staging.path.rstrip("/") + "/"
        for fi in staging.fs.get_file_info(pafs.FileSelector(staging.path, recursive=True)):
            if fi.type != pafs.FileType.File:
                continue
            rel = fi.path[len(base) :]
            parts = rel.split("/")
            if any(is_hidden(p) for p in parts) or not parts[-1].endswith(".parquet"):
                continue
            units.setdefault("/".join(parts[:-1]), []).append(fi)
        return units

    def existing_partitions(self, units: list[str]) -> list[str]:
        return [u for u in units if u and _exists(self.root.join(u))]

    def commit(self, run_id: str, *, mode: str, partition_by: list[str], pause=None) -> CommitResult:
        """Publish the staged output. ``pause(step)`` is a test seam to kill the process mid-commit."""
        import pyarrow.parquet as pq

        pause = pause or (lambda step: None)
        units = self.staged_units(run_id, partition_by)
        result = CommitResult()
        for rel, files in sorted(units.items()):
            rows = 0
            for fi in files:
                rows += pq.read_metadata(fi.path, filesystem=self.root.fs).num_rows
            result.rows_by_partition[rel or "(all)"] = rows
            result.rows += rows
            result.files += len(files)
            result.partitions.append(dict(p.split("=", 1) for p in rel.split("/")) if rel else {})
        if mode == "error_if_exists":
            clash = (
                self.existing_partitions(list(units))
                if partition_by
                else ([""] if self._root_has_data() else [])
            )
            if clash:
                raise OutputError(
                    f"output.mode=error_if_exists but {self.root.uri} already has "
                    f"{', '.join(c or 'data' for c in clash)}",
                    hint="use mode overwrite_partitions to replace it, or write elsewhere",
                )
        if mode != "append" and mode != FORCE_MODE:
            self._refuse_foreign_files(list(units) if partition_by else [""])
        staging = self.staging(run_id)
        journal_units = []
        for rel, files in sorted(units.items()):
            live = self.root.join(rel) if rel else self.root
            journal_units.append(
                {
                    "path": rel,
                    "had_previous": _exists(live) if rel else self._root_has_data(),
                    "files": [fi.base_name for fi in files],
                }
            )
            if rel and (mode != "append" or not journal_units[-1]["had_previous"]):
                _write_text_atomic(staging.join(rel, MARKER), run_id + "\n")
        journal_loc = self.meta.join("journal", f"{run_id}.json")
        journal = {"run_id": run_id, "mode": mode, "state": "committing", "units": journal_units}
        from batchinfer.io.storage import is_object_store

        if is_object_store(self.root.uri) and mode != "append":
            # No directory rename on object stores: add, switch the marker, delete (see below).
            journal["protocol"] = ADD_THEN_DELETE
            for unit in journal_units:
                unit["old_files"] = self._old_files(unit["path"]) if unit["had_previous"] else []
        _write_text_atomic(journal_loc, json.dumps(journal))
        pause("journal_written")
        if journal.get("protocol") == ADD_THEN_DELETE:
            self._add_then_delete(run_id, journal, journal_loc, units, pause)
            return result
        trash = self.meta.join("trash", run_id)
        for unit, (rel, files) in zip(journal_units, sorted(units.items()), strict=False):
            live = self.root.join(rel) if rel else self.root
            if mode == "append" and (unit["had_previous"] or not rel):
                live.fs.create_dir(live.path, recursive=True)
                for fi in files:
                    live.fs.move(fi.path, live.join(fi.base_name).path)
            elif rel:
                if unit["had_previous"]:
                    old = trash.join(rel)
                    old.fs.create_dir(old.path.rsplit("/", 1)[0], recursive=True)
                    _move_dir(live.fs, live.path, old.path, live.atomic_rename)
                    pause("moved_previous")
                live.fs.create_dir(live.path.rsplit("/", 1)[0], recursive=True)
                _move_dir(live.fs, staging.join(rel).path, live.path, live.atomic_rename)
            else:
                self._swap_root_files(run_id, files)
            pause("partition_committed")
        journal["state"] = "committed"
        _write_text_atomic(journal_loc, json.dumps(journal))
        _write_text_atomic(self.root.join("_SUCCESS"), run_id + "\n")
        self._cleanup(run_id)
        journal_loc.fs.delete_file(journal_loc.path)
        return result

    def _old_files(self, rel: str) -> list[str]:
        """The names (relative to the partition) of the files a replacement deletes."""
        from pyarrow import fs as pafs

        live = self.root.join(rel) if rel else self.root
        base = live.path.rstrip("/") + "/"
        names = []
        for fi in live.fs.get_file_info(pafs.FileSelector(live.path, recursive=bool(rel))):
            name = fi.path[len(base) :]
            if fi.type != pafs.FileType.File or name == MARKER or (not rel and is_hidden(name)):
                continue
            names.append(name)
        return sorted(names)

    def _add_then_delete(self, run_id: str, journal: dict, journal_loc: Location, units, pause) -> None:
        """Object-store commit, without renames: new files in, markers switched, old files out.

        1. every staged file is put into its live partition under its unique name (staged names
           carry a uuid): a reader listing the partition now sees the old and the new files, and
           the old ``_SUCCESS``;
        2. the journal turns ``published``; from here on recovery rolls forward, before it back;
        3. per partition, ``_SUCCESS`` is overwritten with this run's id (one PUT: atomic), then the
           old files are deleted.
        A reader that keeps the rows whose ``run_id`` column equals the partition's ``_SUCCESS``
        sees one complete run's rows throughout (docs/storage.md).
        """
        for rel, files in sorted(units.items()):
            live = self.root.join(rel) if rel else self.root
            for fi in files:
                live.fs.move(fi.path, live.join(fi.base_name).path)  # copy + delete on object stores
            pause("new_files_added")
        journal["state"] = "published"
        _write_text_atomic(journal_loc, json.dumps(journal))
        pause("published")
        self._roll_forward(journal, pause)
        journal["state"] = "committed"
        _write_text_atomic(journal_loc, json.dumps(journal))
        _write_text_atomic(self.root.join("_SUCCESS"), run_id + "\n")
        self._cleanup(run_id)
        journal_loc.fs.delete_file(journal_loc.path)

    def _roll_forward(self, journal: dict, pause=None) -> None:
        """Finish a published add-then-delete commit: markers to the run, old files deleted."""
        run_id = journal["run_id"]
        for unit in journal["units"]:
            rel = unit["path"]
            live = self.root.join(rel) if rel else self.root
            if rel:
                _write_text_atomic(live.join(MARKER), run_id + "\n")
            new = set(unit.get("files", []))
            for name in unit.get("old_files", []):
                f = live.join(name)
                if name not in new and _exists(f):
                    f.fs.delete_file(f.path)
            if pause is not None:
                pause("partition_committed")

    def _roll_back_added(self, journal: dict) -> None:
        """Undo an add-then-delete commit that was not published: delete the files it added."""
        for unit in journal.get("units", []):
            rel = unit["path"]
            live = self.root.join(rel) if rel else self.root
            old = set(unit.get("old_files", []))
            for name in unit.get("files", []):
                f = live.join(name)
                if name not in old and _exists(f):
                    f.fs.delete_file(f.path)

    def _refuse_foreign_files(self, units: list[str]) -> None:
        """Raise before anything moves when a partition to replace holds files no run of ours wrote."""
        found: list[str] = []
        for rel in units:
            live = self.root.join(rel) if rel else self.root
            if not _exists(live):
                continue
            foreign, why = self._foreign_files(live, top_level_only=not rel)
            if foreign:
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                found.append(f"{rel or '(root)'}: {shown}" + (f" ({why})" if why else ""))
        if found:
            raise ForeignFilesError(
                f"output {self.root.uri} holds files that no batchinfer run wrote in partitions this run "
                f"would replace ({'; '.join(found)}); nothing was changed",
                hint="point output.path at a directory only batchinfer writes to; to delete those files "
                f"and replace the partitions anyway, set output.mode: {FORCE_MODE}",
            )

    def _foreign_files(self, live: Location, *, top_level_only: bool) -> tuple[list[str], str | None]:
        """Files in ``live`` (relative names) that a batchinfer commit did not put there, and why."""
        from pyarrow import fs as pafs

        base = live.path.rstrip("/") + "/"
        names = []
        for fi in live.fs.get_file_info(pafs.FileSelector(live.path, recursive=not top_level_only)):
            rel = fi.path[len(base) :]
            if top_level_only and (fi.type != pafs.FileType.File or is_hidden(rel)):
                continue  # the root: only its visible files are swapped (_batchinfer stays)
            if fi.type == pafs.FileType.Directory:
                names.append(rel + "/")
            elif fi.type == pafs.FileType.File:
                names.append(rel)
        marker, marker_loc = None, live.join(MARKER)
        if _exists(marker_loc):
            with marker_loc.fs.open_input_stream(marker_loc.path) as fh:
                marker = fh.read(256).decode(errors="replace")
        if marker is None or not _MARKER_TEXT.match(marker):
            why = f"no {MARKER} naming a batchinfer run" if marker is None else f"its {MARKER} names no run"
            return sorted(n for n in names if n != MARKER), why
        return sorted(n for n in names if not _OWNED_FILE.match(n)), None

    def _root_has_data(self) -> bool:
        from pyarrow import fs as pafs

        if not _exists(self.root):
            return False
        return any(
            fi.type == pafs.FileType.File and not is_hidden(fi.base_name)
            for fi in self.root.fs.get_file_info(pafs.FileSelector(self.root.path))
        )

    def _swap_root_files(self, run_id: str, files: list) -> None:
        from pyarrow import fs as pafs

        trash = self.meta.join("trash", run_id, "_root")
        trash.fs.create_dir(trash.path, recursive=True)
        for fi in self.root.fs.get_file_info(pafs.FileSelector(self.root.path)):
            if fi.type == pafs.FileType.File and not is_hidden(fi.base_name):
                self.root.fs.move(fi.path, trash.join(fi.base_name).path)
        for fi in files:
            self.root.fs.move(fi.path, self.root.join(fi.base_name).path)

    # ------------------------------------------------------------------ run records
    def write_run_file(self, run_id: str, name: str, text: str) -> str:
        loc = self.run_dir(run_id).join(name)
        _write_text_atomic(loc, text)
        return loc.uri

    def write_latest(self, text: str) -> str:
        loc = self.meta.join("last_run.json")
        _write_text_atomic(loc, text)
        return loc.uri
