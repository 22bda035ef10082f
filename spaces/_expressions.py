"""A tiny, safe condition language over a trial's metrics and params (no ``eval``).

Grammar (keywords are case-sensitive, names may contain dots: ``mlp.width``)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := operand OP operand          OP: < <= > >= == !=
    operand    := NAME | NUMBER | STRING | true | false

Each comparison has exactly one name and one literal (either side): ``latency_ms <= 0.2``,
``1e6 > size_bytes``, ``architecture == 'mlp'``. A trial that lacks a named value, or
whose value cannot be ordered against the literal, does not satisfy the comparison.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paretotune.errors import ExpressionError

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<string>'[^']*'|\"[^\"]*\")"
    r"|(?P<op><=|>=|==|!=|<|>)"
    r"|(?P<paren>[()])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r")"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class Comparison:
    """``name op value``, normalised so that the name is on the left."""

    name: str
    op: str
    value: float | str | bool

    def holds(self, values: Mapping[str, Any]) -> bool:
        if self.name not in values:
            return False
        actual = values[self.name]
        if isinstance(self.value, str) != isinstance(actual, str):
            return False
        if isinstance(actual, float) and math.isnan(actual):
            return False
        try:
            return bool(_OPS[self.op](actual, self.value))
        except TypeError:
            return False

    def __str__(self) -> str:
        value = repr(self.value) if isinstance(self.value, str) else _number(self.value)
        return f"{self.name} {self.op} {value}"


@dataclass(frozen=True)
class BoolOp:
    """``and`` / ``or`` over two or more parts, or ``not`` over one."""

    kind: str  # "and" | "or" | "not"
    parts: tuple[Node, ...]

    def holds(self, values: Mapping[str, Any]) -> bool:
        if self.kind == "not":
            return not self.parts[0].holds(values)
        results = (part.holds(values) for part in self.parts)
        return all(results) if self.kind == "and" else any(results)

    def __str__(self) -> str:
        if self.kind == "not":
            return f"not {_grouped(self.parts[0])}"
        return f" {self.kind} ".join(_grouped(part) for part in self.parts)


Node = Comparison | BoolOp


@dataclass(frozen=True)
class Expression:
    """A parsed condition: test it with :meth:`holds`, list its :attr:`comparisons`."""

    text: str
    root: Node

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` (name -> number/string/bool) satisfy the condition."""
        return self.root.holds(values)

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        """Every comparison, left to right."""
        found: list[Comparison] = []
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Comparison):
                found.append(node)
            else:
                stack.extend(reversed(node.parts))
        return tuple(found)

    @property
    def names(self) -> tuple[str, ...]:
        """The names the condition refers to, in order of first use."""
        return tuple(dict.fromkeys(c.name for c in self.comparisons))

    def __str__(self) -> str:
        return self.text


def parse_expression(text: str) -> Expression:
    """Parse a condition such as ``"latency_ms <= 0.2 and size_bytes < 1e6"``.

    Raises:
        ExpressionError: on a syntax error, naming the offending token and its position.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"an empty condition {text!r}; write e.g. 'latency_ms <= 0.2'")
    parser = _Parser(text, _tokenize(text))
    try:
        root = parser.expr()
    except RecursionError:
        raise ExpressionError(f"{text[:40]!r}…: nested too deeply") from None
    if parser.peek() is not None:
        parser.fail("expected 'and', 'or' or the end")
    return Expression(text.strip(), root)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            start = len(text) - len(text[position:].lstrip())
            raise ExpressionError(
                f"in {text!r}: unexpected character {text[start]!r} at position {start}"
            )
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str, tokens: list[tuple[str, str, int]]):
        self.text, self.tokens, self.index = text, tokens, 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def fail(self, expected: str) -> None:
        token = self.peek()
        where = f"{token[1]!r} at position {token[2]}" if token else "the end"
        raise ExpressionError(f"in {self.text!r}: {expected}, got {where}")

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "name" and token[1] == word:
            self.index += 1
            return True
        return False

    def expr(self) -> Node:
        return self._chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("and", self.not_expr)

    def _chain(self, word: str, part: Callable[[], Node]) -> Node:
        parts = [part()]
        while self._keyword(word):
            parts.append(part())
        return parts[0] if len(parts) == 1 else BoolOp(word, tuple(parts))

    def not_expr(self) -> Node:
        if self._keyword("not"):
            return BoolOp("not", (self.not_expr(),))
        token = self.peek()
        if token is not None and token[1] == "(":
            self.index += 1
            inner = self.expr()
            token = self.peek()
            if token is None or token[1] != ")":
                self.fail("expected ')'")
            self.index += 1
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        left = self.operand()
        token = self.peek()
        if token is None or token[0] != "op":
            self.fail("expected one of < <= > >= == !=")
        assert token is not None
        self.index += 1
        right = self.operand()
        if isinstance(left, _Name) == isinstance(right, _Name):
            raise ExpressionError(
                f"in {self.text!r}: a comparison needs one metric name and one value, "
                f"got {left} {token[1]} {right}"
            )
        if isinstance(left, _Name):
            return Comparison(left.name, token[1], right)  # type: ignore[arg-type]
        return Comparison(right.name, _MIRROR[token[1]], left)  # type: ignore[union-attr]

    def operand(self) -> _Name | float | str | bool:
        token = self.peek()
        if token is None or token[0] in ("op", "paren"):
            self.fail("expected a metric name or a value")
        assert token is not None
        kind, value, _ = token
        if kind == "name" and value in ("and", "or", "not"):
            self.fail("expected a metric name or a value")
        self.index += 1
        if kind == "number":
            return float(value)
        if kind == "string":
            return value[1:-1]
        if value in ("true", "false"):
            return value == "true"
        return _Name(value)


@dataclass(frozen=True)
class _Name:
    name: str

    def __str__(self) -> str:
        return self.name


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(float(value))


def _grouped(node: Node) -> str:
    return f"({node})" if isinstance(node, BoolOp) and node.kind != "not" else str(node)


__all__ = ["BoolOp", "Comparison", "Expression", "ExpressionError", "parse_expression"]
