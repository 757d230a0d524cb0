"""Files every stage and harness writes: atomic writes, JSON lines, fingerprints, and the partial
results that let a killed run resume.

Atomic: a file is written to a temporary name and renamed, so a killed writer never leaves a file
that make (or a reader) would take as done.

Partial results: a killed run's finished rows, so that a re-run does only the rest. A partial file
is JSON lines: a header {"fingerprint": ...} naming the settings, inputs and code that produced the
rows, then one row per line, each with an "id". Rows are appended, and synced, as they finish; a
line cut short by a kill is dropped when the file is read. A run reuses the rows only under the
same fingerprint.

RecordError, the error of a malformed input (a line that is not JSON here, a bad record in
itool.records), lives here, below every module that raises it.
"""
import hashlib
import json
import os
from pathlib import Path


class RecordError(ValueError):
    """A malformed input record; the message names the file and the record, `reason` is its kind
    ("malformed record", "unreadable tool list", "call does not parse", "call in a record-specific
    syntax", "unknown function")."""

    def __init__(self, message, reason="malformed record"):
        super().__init__(message)
        self.reason = reason


def atomic_write_text(path, text):
    """Write via a temp file and rename, so a killed writer never leaves a file that looks done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path, rows):
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise RecordError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
    return rows


def fingerprint(settings, inputs=()):
    """Hash of a run's settings and its input files' sizes and mtimes: saved state or partial
    results are reused only by a run with the same fingerprint, never by one whose data or flags
    changed."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in inputs:
        st = os.stat(path)
        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# --- partial results ------------------------------------------------------------------------------

def read_partial(path, fingerprint):
    """The rows (by id) of partial file `path`, or None when there is no such file or its rows
    were written under another fingerprint."""
    path = Path(path)
    if not path.is_file():
        return None
    rows, header = {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the line being written when the run was killed
            continue
        if header is None:
            header = row
        else:
            rows[row["id"]] = row
    return rows if header is not None and header.get("fingerprint") == fingerprint else None


def write_partial(path, fingerprint, rows=()):
    """(Re)write partial file `path`: the header, then `rows`."""
    write_jsonl(path, [{"fingerprint": fingerprint}, *rows])


def resume_partial(path, fingerprint):
    """The rows a killed run with this fingerprint left in `path` (by id), the file rewritten to
    hold just them (no line cut short), ready for append_partial; any other run's rows are dropped."""
    rows = read_partial(path, fingerprint) or {}
    write_partial(path, fingerprint, rows.values())
    if rows:
        print(f"Resuming: {len(rows)} results from {path}")
    return rows


def append_partial(path, rows):
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        f.flush()
        os.fsync(f.fileno())
