"""The helpers shared by the checks of common.py: Failed and require (a check that does not hold),
err, and the readers of a report (load) and of a --predictions file."""
import json, sys


class Failed(Exception):
    pass


def require(cond, why):
    if not cond:
        raise Failed(why)


def err(*a):
    print(*a, file=sys.stderr)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise Failed(f"cannot read {path}: {e}")


def predictions(path, status=False):
    """[(sample, exit, class[, status])] of a --predictions JSONL file."""
    rows = []
    try:
        for n, line in enumerate(open(path), 1):
            if line.strip():
                try:
                    p = json.loads(line)
                    rows.append((int(p["sample"]), p["exit"], int(p["class"])) + ((p["status"],) if status else ()))
                except (ValueError, KeyError, TypeError) as e:
                    raise Failed(f"{path}:{n}: not a prediction line ({e}): {line.strip()[:80]}")
    except OSError as e:
        raise Failed(f"cannot read {path}: {e}")
    return rows


num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
