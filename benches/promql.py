"""The part of PromQL that docs/grafana-dashboard.json uses, evaluated over scraped /metrics.

benches/dashboard.py renders the dashboard's panels from a real run without
Prometheus or Grafana (neither is installable here): it scrapes each process's
/metrics once a second and evaluates every panel's ``expr`` with this. It knows

    sum|max|min|avg [by (labels)] (expr)      rate(selector[window])
    histogram_quantile(q, expr)               selector{l="v", l!="v", l=~"re", l!~"re"}
    expr / expr                               (expr)

and refuses anything else (ValueError), so a dashboard query it cannot draw
fails the rendering instead of drawing something else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]
#: (time, {(metric name, labels): value}) of every scrape, in time order
Samples = list[tuple[float, dict[tuple[str, Labels], float]]]

_TOKEN = re.compile(
    r'\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_:$][A-Za-z0-9_:$]*)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>=~|!~|!=|[=(){}\[\],/]))'
)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read {text[pos:]!r}")
        out.append(m.group(m.lastgroup or "op"))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


@dataclass
class Query:
    eval: Callable[[Samples, int], Vector]


class _Parser:
    def __init__(self, text: str, windows: dict[str, float]) -> None:
        self.t = _tokens(text)
        self.i = 0
        self.windows = windows

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise ValueError(f"expected {want!r}, found {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> Callable[[Samples, int], Vector]:
        e = self.expr()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return e

    def expr(self) -> Callable[[Samples, int], Vector]:
        left = self.term()
        if self.peek() == "/":
            self.take("/")
            right = self.term()

            def div(s: Samples, k: int) -> Vector:
                a, b = left(s, k), right(s, k)
                return {lb: a[lb] / b[lb] for lb in a if lb in b and b[lb] != 0}

            return div
        return left

    def term(self) -> Callable[[Samples, int], Vector]:
        tok = self.peek()
        if tok == "(":
            self.take("(")
            e = self.expr()
            self.take(")")
            return e
        if tok in ("sum", "max", "min", "avg"):
            return self.agg()
        if tok == "rate":
            return self.rate()
        if tok == "histogram_quantile":
            return self.quantile()
        name, match = self.selector()

        def instant(s: Samples, k: int) -> Vector:
            return {lb: v for (n, lb), v in s[k][1].items() if n == name and match(lb)}

        return instant

    def labels(self) -> list[str]:
        self.take("(")
        out = [self.take()]
        while self.peek() == ",":
            self.take(",")
            out.append(self.take())
        self.take(")")
        return out

    def agg(self) -> Callable[[Samples, int], Vector]:
        op = self.take()
        by: list[str] | None = None
        if self.peek() == "by":
            self.take("by")
            by = self.labels()
        self.take("(")
        inner = self.expr()
        self.take(")")
        fn: Callable[[list[float]], float] = {
            "sum": sum,
            "max": max,
            "min": min,
            "avg": lambda xs: sum(xs) / len(xs),
        }[op]

        def aggregate(s: Samples, k: int) -> Vector:
            groups: dict[Labels, list[float]] = {}
            for lb, v in inner(s, k).items():
                d = dict(lb)
                key = tuple((n, d.get(n, "")) for n in by) if by else ()
                groups.setdefault(key, []).append(v)
            return {key: fn(vs) for key, vs in groups.items()}

        return aggregate

    def selector(self) -> tuple[str, Callable[[Labels], bool]]:
        name = self.take()
        tests: list[Callable[[dict[str, str]], bool]] = []
        if self.peek() == "{":
            self.take("{")
            while self.peek() != "}":
                label, op, value = self.take(), self.take(), self.take()[1:-1]
                if op == "=":
                    tests.append(lambda d, la=label, v=value: d.get(la, "") == v)
                elif op == "!=":
                    tests.append(lambda d, la=label, v=value: d.get(la, "") != v)
                elif op in ("=~", "!~"):
                    rx = re.compile(f"^(?:{value})$")
                    hit = op == "=~"
                    tests.append(lambda d, la=label, r=rx, h=hit: bool(r.match(d.get(la, ""))) == h)
                else:
                    raise ValueError(f"matcher {op!r}")
                if self.peek() == ",":
                    self.take(",")
            self.take("}")
        return name, lambda lb: all(t(dict(lb)) for t in tests)

    def rate(self) -> Callable[[Samples, int], Vector]:
        self.take("rate")
        self.take("(")
        name, match = self.selector()
        self.take("[")
        w = self.take()
        self.take("]")
        self.take(")")
        window = self.windows[w] if w in self.windows else float(w.rstrip("s"))

        def rate(s: Samples, k: int) -> Vector:
            t1, now = s[k]
            first = k
            while first > 0 and t1 - s[first - 1][0] <= window:
                first -= 1
            out: Vector = {}
            for (n, lb), v in now.items():
                if n != name or not match(lb):
                    continue
                # the oldest sample of this series within the window (it may have begun in it)
                j = next((j for j in range(first, k) if (n, lb) in s[j][1]), k)
                if j == k:
                    continue
                t0, prev = s[j][0], s[j][1][(n, lb)]
                out[lb] = (v - prev if v >= prev else v) / (t1 - t0)  # a reset: counted from 0
            return out

        return rate

    def quantile(self) -> Callable[[Samples, int], Vector]:
        self.take("histogram_quantile")
        self.take("(")
        q = float(self.take())
        self.take(",")
        inner = self.expr()
        self.take(")")

        def quantile(s: Samples, k: int) -> Vector:
            groups: dict[Labels, list[tuple[float, float]]] = {}
            for lb, v in inner(s, k).items():
                d = dict(lb)
                le = d.pop("le")
                groups.setdefault(tuple(sorted(d.items())), []).append(
                    (math.inf if le == "+Inf" else float(le), v)
                )
            out: Vector = {}
            for key, buckets in groups.items():
                buckets.sort()
                total = buckets[-1][1]
                if total <= 0:
                    continue
                rank, lo_bound, lo_count = q * total, 0.0, 0.0
                for bound, count in buckets:
                    if count >= rank:
                        if math.isinf(bound):
                            out[key] = lo_bound
                        else:  # linear within the bucket, as Prometheus does
                            span = count - lo_count
                            out[key] = lo_bound + (bound - lo_bound) * (
                                (rank - lo_count) / span if span else 1
                            )
                        break
                    lo_bound, lo_count = bound, count
            return out

        return quantile


def compile_query(text: str, windows: dict[str, float] | None = None) -> Callable[[Samples, int], Vector]:
    """``f(samples, k)``: the query's instant vector at scrape ``k``."""
    return _Parser(text, windows or {}).parse()


__all__ = ["Labels", "Samples", "Vector", "compile_query"]
