#!/usr/bin/env python3
"""Where a request's server CPU goes, from a `perf record --call-graph dwarf` of the http_stack
server (see scripts/http-stack-cpu.sh, PERF=C).

    perf script -i perf.data -F tid,ip,sym | scripts/perf-summary.py

Each sample is charged to the outermost frame that matches one of the middleware's concerns
(a log line, the span, metrics, the timeout's timer, ...); samples matching none are split into
the kernel's socket calls and the rest (hyper, axum, tower's futures, allocation).
"""
import collections
import re
import sys

CONCERNS = [
    ("JSON log line (event)", r"tracing_core::event::Event::dispatch|Event::child_of"),
    ("request span: create", r"tracing::span::Span::make_with|tracing::span::Span::new"),
    ("request span: record ids", r"Span::record|TraceContext"),
    ("request span: enter/exit/close", r"try_close|on_close|on_exit|on_enter|Dispatch::exit|Dispatch::enter"),
    ("metrics (OpenTelemetry SDK)", r"opentelemetry|HttpMetrics|metrics::http::"),
    ("timeout timer", r"reregister|clear_entry|tokio::time::sleep|TimerEntry|Wheel::(insert|remove)"),
    ("request id (uuid)", r"uuid::|make_request_id"),
    ("CORS", r"tower_http::cors"),
    ("compression negotiation", r"content_encoding|compression"),
]
REST = [
    ("kernel: writev (response)", r"writev"),
    ("kernel: recv (request)", r"recvfrom|__libc_recv"),
    ("epoll / park", r"epoll_wait|park"),
    ("hyper: parse request", r"hyper::proto::h1::role::.*parse|Buffered::parse"),
    ("hyper: encode response", r"hyper::proto::h1::role::.*encode|write_head"),
    ("dropping futures, requests, responses", r"drop_in_place"),
    ("allocation", r"malloc|free|__rdl_alloc"),
]


def short(frame):
    for _ in range(6):
        frame = re.sub(r"<[^<>]*>", "", frame)
    return frame


def samples(lines):
    stack = None
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = None
        elif line[0] in " \t":
            parts = line.split(None, 1)
            if stack is not None:
                stack.append(short(parts[1] if len(parts) > 1 else "?"))
        else:
            stack = []
    if stack:
        yield stack


def classify(stack):
    for frame in reversed(stack):  # outermost first
        for name, pattern in CONCERNS:
            if re.search(pattern, frame):
                return name
    joined = "\n".join(stack)
    for name, pattern in REST:
        if re.search(pattern, joined):
            return name
    return "other (hyper, axum routing, tower futures)"


counts = collections.Counter(classify(s) for s in samples(sys.stdin))
total = sum(counts.values())
print(f"{total} samples")
for name, n in counts.most_common():
    print(f"{100 * n / total:5.1f}%  {name}")
