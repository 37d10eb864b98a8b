"""Progress lines: steady interval, rate and ETA from the counts and a clock (no sleeping)."""
from coop.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_lines_at_interval_with_rate_and_eta():
    clock, lines = Clock(), []
    p = Progress("views", total=100, unit="images", log=lines.append, interval=10, clock=clock)
    clock.t = 1.0
    p.update(10)                      # first update: a line
    clock.t = 5.0
    p.update(10)                      # 4 s later: none
    clock.t = 12.0
    p.update(40, extra="loss 1.5")    # 11 s after the last line: a line
    clock.t = 20.0
    p.update(40)                      # the end: only done() writes it
    p.done()
    assert len(lines) == 3
    assert lines[0].startswith("views: 10/100 images (10%), 10 images/s")
    # 60 images in 12 s = 5/s; 40 left -> 8 s
    assert "60/100 images (60%)" in lines[1] and "5 images/s" in lines[1]
    assert "ETA 8 s" in lines[1] and lines[1].endswith("loss 1.5")
    assert "100/100" in lines[2] and "ETA" not in lines[2] and "elapsed 20 s" in lines[2]


def test_format_seconds():
    assert format_seconds(12.4) == "12 s"
    assert format_seconds(185) == "3 min 05 s"
    assert format_seconds(7620) == "2 h 07 min"
