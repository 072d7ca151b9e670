"""What the ``s3lite`` command prints: progress bars, progress lines and the status
table. Pure functions from the admin API's JSON to text (no I/O), plus
:class:`ProgressPrinter`, which follows a stream of progress events (admin.py's NDJSON:
a join today, a heal pass tomorrow) and draws them on a terminal or as lines.

On a terminal a progress bar is redrawn in place (carriage return) and each step
gets its own line above it; anywhere else (a pipe, a file, CI) there is one line per
step and per 25% milestone, and never a control character.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Final

BAR_WIDTH: Final = 30
UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
MILESTONES: Final = (25, 50, 75, 100)


def human_bytes(size: float | None) -> str:
    """1536 -> "1.5 KiB"; None -> "?"."""
    if size is None:
        return "?"
    value = float(size)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """75 -> "1:15"; 3725 -> "1:02:05"; None -> "--:--"."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """``[#######.......]``; an unknown fraction is all dots."""
    filled = 0 if fraction is None else round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def percent(fraction: float | None) -> str:
    return "  ?%" if fraction is None else f"{int(max(0.0, min(1.0, fraction)) * 100):3d}%"


def progress_line(snapshot: Mapping[str, Any]) -> str:
    """One line for a Progress.snapshot(): bar, percent, sectors, bytes, rate, time left.

    ``[##########....................]  33% 12/36 sectors  40.0/120.0 MiB  35.2 MiB/s  ETA 0:02``
    """
    fraction = snapshot.get("fraction")
    parts = [bar(fraction), percent(fraction)]
    if snapshot.get("items_total") is not None:
        parts.append(f"{snapshot['items_done']}/{snapshot['items_total']} sectors")
    if snapshot.get("bytes_total") is not None:
        done = human_bytes(snapshot["bytes_done"]).split(" ")
        total = human_bytes(snapshot["bytes_total"])
        parts.append(f"{done[0]}/{total}")
    rate = snapshot.get("rate")
    parts.append(f"{human_bytes(rate)}/s" if rate else "--/s")
    parts.append(f"ETA {human_duration(snapshot.get('eta'))}")
    return "  ".join(parts)


def step_line(message: Mapping[str, Any]) -> str:
    """``plan: sectors=36 bytes=120.0 MiB donors=...`` for a step event."""
    details = message.get("details") or {}
    words = [
        f"{key}={human_bytes(value) if key == 'bytes' else _plain(value)}"
        for key, value in details.items()
    ]
    return " ".join([f"{message['step']}:" if words else str(message["step"]), *words])


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


class ProgressPrinter:
    """Draws progress events as they come (see the module doc). Feed each event to
    :meth:`feed`; :meth:`close` ends the bar's line."""

    def __init__(self, out: IO[str], *, tty: bool) -> None:
        self._out = out
        self._tty = tty
        self._bar_shown = False
        self._milestone = 0
        self.last: Mapping[str, Any] | None = None
        """The last snapshot seen."""

    def feed(self, message: Mapping[str, Any]) -> None:
        snapshot = message.get("progress")
        if isinstance(snapshot, Mapping):
            fraction = snapshot.get("fraction")
            last = None if self.last is None else self.last.get("fraction")
            if fraction is not None and last is not None and fraction < last:
                self._milestone = 0  # counting again (a second copy pass)
            self.last = snapshot
        kind = message.get("event")
        if kind == "step":
            self._line(step_line(message))
        elif kind == "progress" and self.last is not None:
            if self._tty:
                self._draw(self.last)
            else:
                self._milestones(self.last)

    def close(self) -> None:
        if self._bar_shown:
            self._out.write("\n")
            self._bar_shown = False
        self._out.flush()

    def _line(self, text: str) -> None:
        if self._bar_shown:
            self._out.write("\r\x1b[K")
            self._bar_shown = False
        self._out.write(text + "\n")
        self._out.flush()

    def _draw(self, snapshot: Mapping[str, Any]) -> None:
        self._out.write("\r" + progress_line(snapshot) + "\x1b[K")
        self._out.flush()
        self._bar_shown = True

    def _milestones(self, snapshot: Mapping[str, Any]) -> None:
        """One line when the fraction passes one or more milestones."""
        fraction = snapshot.get("fraction")
        if fraction is None:
            return
        passed = sum(1 for milestone in MILESTONES if fraction * 100 >= milestone)
        if passed > self._milestone:
            self._milestone = passed
            self._line(progress_line(snapshot))


# -- status ---------------------------------------------------------------------------------

USAGE_WIDTH: Final = 20
FAIR_AT: Final = 0.75
"""Where the fair share sits on a usage bar: a node at its fair share fills 3/4 of it,
so nodes above their share still show how far above."""


def usage_bar(size: int | None, fair: int | None, width: int = USAGE_WIDTH) -> str:
    """``[###########....|....]  96%``: bytes against the fair share (the ``|``)."""
    if size is None:
        return "[" + "?" * width + "]     "
    if not fair:
        return "[" + "." * width + "]     "
    scale = fair / FAIR_AT
    filled = min(width, round(size / scale * width))
    mark = round(FAIR_AT * width)
    cells = ["#" if i < filled else "." for i in range(width)]
    cells[min(mark, width - 1)] = "|"
    return "[" + "".join(cells) + f"] {round(100 * size / fair):3d}%"


def _since(epoch: float | None, now: float) -> str:
    if epoch is None:
        return ""
    when = dt.datetime.fromtimestamp(epoch).strftime("%H:%M:%S")
    return f"since {when} ({human_duration(max(0.0, now - epoch))} ago)"


def node_state(node: Mapping[str, Any], now: float) -> str:
    """ "up", "joining", "full", or "down since 14:02:11 (3:05 ago)"."""
    condition = str(node.get("condition") or ("up" if node.get("up", True) else "down"))
    if condition == "down":
        return f"down {_since(node.get('down_since'), now)}".rstrip()
    return condition


def status_text(status: Mapping[str, Any], now: Callable[[], float] = time.time) -> str:
    """The status table ``s3lite status`` prints (lines joined, ending in a newline)."""
    clock = now()
    fair = status.get("fair_share_bytes")
    ready = sum(1 for node in status["nodes"] if node["state"] == "ready")
    lines = [
        f"policy {status['policy']}, topology generation {status['generation']}, "
        f"{status.get('nodes_up', '?')} of {ready} nodes up, "
        f"fair share {human_bytes(fair) if fair is not None else '?'}",
        f"{'node':<16} {'state':<32} {'sectors':>7} {'bytes':>10}  usage vs fair share",
    ]
    for node in status["nodes"]:
        size = node.get("bytes")
        lines.append(
            f"{node['id']:<16} {node_state(node, clock):<32} {node['sectors']:>7} "
            f"{human_bytes(size) if size is not None else 'unknown':>10}  {usage_bar(size, fair)}"
        )
        lines.append(f"{'':<17}{node['address']}  arcs {' '.join(node['arcs']) or '-'}")
        if node.get("reason"):
            lines.append(f"{'':<17}why down: {node['reason']}")
    migration = status.get("migration")
    if migration:
        lines.append(
            f"migration: {migration['sectors']} sectors to {migration['node']} "
            f"({migration['phase']}) from {_plain(migration['donors'])}"
        )
    for task in ("join", "heal"):
        running = (status.get("progress") or {}).get(task)
        if running and not running.get("finished"):
            lines.append(f"{running['task']} ({running['step']}): {progress_line(running)}")
    lines += parity_lines(status)
    lines += heal_lines(status)
    return "\n".join(lines) + "\n"


def heal_lines(status: Mapping[str, Any]) -> list[str]:
    """The healer: degraded segments, rebuilt bytes, how far the scrub is."""
    heal = status.get("heal")
    if not heal:
        return []
    scrub = heal["scrub_position"]
    where = "not started" if scrub["fraction"] is None else f"{scrub['fraction']:.0%}"
    return [
        f"healer: {heal['degraded_segments']} degraded segment(s), heal queue "
        f"{heal['heal_queue']}, rebuilt {heal['rebuilt_parts']} part(s) "
        f"({human_bytes(heal['rebuilt_bytes'])}); scrub {where} through pass "
        f"{scrub['passes'] + 1}"
    ]


def parity_lines(status: Mapping[str, Any]) -> list[str]:
    """Parity of new objects against the target, and the heal queue."""
    parity = status.get("parity")
    if not parity:
        return []
    lines = [
        f"parity: target {parity['target']}, new objects get {parity['effective']} "
        f"({parity['writable_nodes']} of {parity['nodes']} nodes take new parts); "
        f"heal queue: {status.get('heal_queue', '?')} segment(s)"
    ]
    if parity.get("warning"):
        lines.append(f"warning: {parity['warning']}")
    return lines
