"""What the commands write, made readable on any console: ASCII spellings where the console's
encoding has no Greek or maths symbols (Windows' cp1252), and prose wrapped to 100 columns.
"""
import contextlib
import io
import sys
import textwrap

WIDTH = 100

ASCII = {"λ": "lambda", "κ": "kappa", "η": "eta", "σ": "sigma", "δ": "delta", "Δ": "Delta", "θ": "theta",
         "Σ": "sum ", "∂": "d", "∇": "grad ", "√": "sqrt", "ᴸ": "^L", "²": "^2", "₀": "0", "‖": "||",
         "−": "-", "—": "-", "–": "-", "·": "*", "×": "x", "÷": "/", "≤": "<=", "≥": ">=", "≈": "~",
         "≡": "==", "→": "->", "←": "<-", "…": "...", "’": "'", "“": '"', "”": '"'}


class AsciiFallback(io.TextIOBase):
    """A text stream that writes through `stream`, spelling in ASCII each character the
    stream's encoding cannot encode (λ as 'lambda', − as '-'), and '?' for any other."""

    def __init__(self, stream):
        self.stream = stream
        self.target = stream.encoding
        self.table = str.maketrans({c: a for c, a in ASCII.items() if not _encodes(c, self.target)})

    @property
    def encoding(self):
        return self.target

    def write(self, text):
        text = text.translate(self.table).encode(self.target, errors="replace").decode(self.target)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()

    def isatty(self):
        return self.stream.isatty()


def _encodes(character, encoding):
    try:
        character.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


@contextlib.contextmanager
def readable_streams():
    """Within: sys.stdout and sys.stderr fall back to ASCII spellings if they cannot write λ."""
    saved = sys.stdout, sys.stderr
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        encoding = getattr(stream, "encoding", None)  # None: an in-memory stream, any text goes
        if encoding and not all(_encodes(c, encoding) for c in "λκ−≤‖"):
            setattr(sys, name, AsciiFallback(stream))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def fit(text, width=WIDTH):
    """`text` with every prose line wider than `width` wrapped (continuation lines keep its
    indent); tables (a header, a line of dashes, rows up to a blank line) are left as they are."""
    lines, out, in_table = text.split("\n"), [], False
    for i, line in enumerate(lines):
        starts_table = i + 1 < len(lines) and _is_rule(lines[i + 1])
        in_table = (in_table or starts_table) and bool(line.strip())
        if in_table or len(line) <= width:
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip())]
        out.append(textwrap.fill(line.strip(), width, initial_indent=indent, subsequent_indent=indent,
                                 break_on_hyphens=False, break_long_words=False))
    return "\n".join(out)


def _is_rule(line):
    return bool(line) and set(line) <= set("- ") and line.startswith("-")
