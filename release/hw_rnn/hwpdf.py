"""Typeset the written answers as a PDF: a cover page, then one page range per question, in a fixed order.

Used by check_submission.py (your answers, hw_rnn_written.pdf) and by the course staff's build (the blank
template). It needs only packages that pip installs everywhere and works offline: fpdf2 writes the PDF,
markdown-it-py reads the markdown, matplotlib's mathtext draws the formulas, its DejaVu fonts set the text.
No LaTeX, no browser. Whatever cannot be typeset (a formula mathtext does not know, a very long answer, raw
HTML) is shown as plain text; nothing in an answer is run, loaded or followed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

FIXED_DATE = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""The PDF's creation date: fixed, so the same answers give the same bytes."""
MAX_MARKDOWN = 30_000
"""Answers longer than this are shown as plain text (typesetting markdown that long is slow)."""
MAX_SHOWN = 100_000
"""Answers longer than this are cut in the PDF (the notebook still holds everything)."""
MAX_FORMULA = 600
MAX_FORMULAS = 1500
MAX_FIGURE_PIXELS = 16_000_000
TITLE = "hw_rnn: written answers"

_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)((?:[^$\n]|\n(?![ \t]*\n))+?)(?<![\s\\])\$(?!\d)", re.S)
_PLACEHOLDER = re.compile(r"MATHPH(\d+)Z")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\{(?:aligned|align\*?|array|gathered|split|cases|equation\*?)\}"
                          r"(?:\{[^}]*\})?")
_SIZING = re.compile(r"\\(?:big|Big|bigg|Bigg)[lrm]?(?![a-zA-Z])")
_UNBRACED = re.compile(r"\\(mathcal|mathbf|mathrm|mathbb|mathit|mathsf|boldsymbol|hat|bar|tilde|vec|dot|ddot|"
                       r"overrightarrow|overleftarrow|overline|underline|sqrt)(?![A-Za-z])\s*([A-Za-z0-9]|\\[A-Za-z]+)")
_SHORT_FRAC = re.compile(r"\\frac\s*([A-Za-z0-9])\s*([A-Za-z0-9])")
_REPLACE = ((r"\boldsymbol", r"\mathbf"), (r"\operatorname", r"\mathrm"), (r"\text", r"\mathrm"),
            (r"\tfrac", r"\frac"), (r"\dfrac", r"\frac"),
            (r"\lVert", r"\|"), (r"\rVert", r"\|"), (r"\Vert", r"\|"), (r"\lvert", r"|"), (r"\rvert", r"|"),
            (r"\coloneqq", r":="), (r"\top", r"T"), (r"\le", r"\leq"), (r"\ge", r"\geq"), (r"\texttt", r"\mathtt"),
            (r"\dots", r"\ldots"))


@dataclass(frozen=True)
class PageRange:
    """Where one question sits in the PDF (pages counted from 1)."""

    number: str
    title: str
    points: float
    first: int
    last: int


def _fonts() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


class _Glyphs:
    """Replaces characters the text font cannot draw (and control characters) by '?'."""

    def __init__(self, font: Path) -> None:
        from fontTools.ttLib import TTFont

        self.known = set(TTFont(str(font), lazy=True).getBestCmap() or {})

    def clean(self, text: str) -> str:
        text = text.replace("\t", "    ").replace("\r\n", "\n").replace("\r", "\n")
        return "".join(ch if ch == "\n" or (ord(ch) in self.known and ord(ch) >= 32) else "?" for ch in text)


def _latex_for_mathtext(latex: str) -> List[str]:
    """The lines of a formula in the dialect matplotlib's mathtext reads (environments and sizing removed)."""
    text = _SIZING.sub("", _ENVIRONMENT.sub("", latex))
    text = _UNBRACED.sub(lambda m: f"\\{m.group(1)}{{{m.group(2)}}}", text.replace("\n", " "))
    for old, new in _REPLACE:
        text = re.sub(re.escape(old) + r"(?![a-zA-Z])", lambda _m, new=new: new, text)
    text = _SHORT_FRAC.sub(lambda m: f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}", text)
    lines = [line.replace("&", " ").strip() for line in re.split(r"\\\\", text)]
    return [line for line in lines if line]


class _Writer:
    """One PDF being written; every method is total (bad input degrades to plain text, never an exception)."""

    def __init__(self) -> None:
        from fpdf import FPDF

        fonts = _fonts()
        self.pdf = FPDF(format="A4", unit="mm")
        self.pdf.set_creation_date(FIXED_DATE)
        self.pdf.set_title(TITLE)
        self.pdf.set_creator("hwpdf.py")
        self.pdf.set_producer("fpdf2")
        self.pdf.set_auto_page_break(True, margin=16)
        self.pdf.set_margins(18, 16, 18)
        for style, suffix in (("", ""), ("B", "-Bold"), ("I", "-Oblique"), ("BI", "-BoldOblique")):
            self.pdf.add_font("Sans", style, str(fonts / f"DejaVuSans{suffix}.ttf"))
            self.pdf.add_font("Mono", style, str(fonts / f"DejaVuSansMono{suffix}.ttf"))
        self.glyphs = _Glyphs(fonts / "DejaVuSans.ttf")
        self.formulas = 0
        self.cache: Dict[Tuple[str, float], Optional[Tuple[bytes, float, float]]] = {}
        self.footer_text = ""
        self.pdf.footer = self._footer  # type: ignore[method-assign]

    # -- page furniture -------------------------------------------------------------------------------------------
    def _footer(self) -> None:
        self.pdf.set_y(-11)
        self.pdf.set_font("Sans", "", 7.5)
        self.pdf.set_text_color(110)
        self.pdf.cell(0, 5, self.glyphs.clean(f"{self.footer_text}   ·   page {self.pdf.page_no()}"), align="C")
        self.pdf.set_text_color(0)

    @property
    def width(self) -> float:
        return self.pdf.w - self.pdf.l_margin - self.pdf.r_margin

    def font(self, size: float = 10, style: str = "", family: str = "Sans") -> None:
        self.pdf.set_font(family, style, size)

    def text_block(self, text: str, size: float = 10, style: str = "", family: str = "Sans", height: float = 5) -> None:
        self.font(size, style, family)
        self.pdf.set_x(self.pdf.l_margin)
        self.pdf.multi_cell(0, height, self.glyphs.clean(text))

    def words(self, text: str, line: float) -> None:
        """Flowing text in the current font, wrapped at spaces by hand (so formulas can sit between words)."""
        right = self.pdf.w - self.pdf.r_margin
        for word in re.findall(r"\s*\S+|\s+$", self.glyphs.clean(text).replace("\n", " ")):
            width = self.pdf.get_string_width(word)
            if self.pdf.get_x() + width > right + 0.01 and self.pdf.get_x() > self.pdf.l_margin + 0.01:
                self.pdf.ln(line)
                word = word.lstrip()
                width = self.pdf.get_string_width(word)
            if self.pdf.get_y() + line > self.pdf.page_break_trigger:
                x = self.pdf.get_x()
                self.pdf.add_page()
                self.pdf.set_x(x)
            if width > right - self.pdf.l_margin:
                self.pdf.write(line, word)  # one word longer than a line: fpdf2 breaks it anywhere
            elif word:
                self.pdf.cell(width, line, word)

    # -- formulas -------------------------------------------------------------------------------------------------
    def formula(self, latex: str, size: float) -> Optional[Tuple[bytes, float, float]]:
        """``(png, width mm, height mm)`` of one line of LaTeX drawn by mathtext, or None if it cannot be drawn."""
        key = (latex, size)
        if key in self.cache:
            return self.cache[key]
        result = None
        if len(latex) <= MAX_FORMULA and self.formulas < MAX_FORMULAS:
            self.formulas += 1
            try:
                import warnings

                import matplotlib
                from matplotlib import mathtext
                from matplotlib.font_manager import FontProperties

                buffer = io.BytesIO()
                with warnings.catch_warnings(), matplotlib.rc_context({"mathtext.fontset": "dejavusans"}):
                    warnings.simplefilter("ignore")
                    mathtext.math_to_image(f"${latex}$", buffer, prop=FontProperties(size=size), dpi=300,
                                           format="png")
                from PIL import Image

                with Image.open(io.BytesIO(buffer.getvalue())) as image:
                    width, height = image.size
                result = (buffer.getvalue(), width / 300 * 25.4, height / 300 * 25.4)
            except Exception:  # mathtext's parser raises ValueError and others on what it does not know
                result = None
        self.cache[key] = result
        return result

    def display_math(self, latex: str) -> None:
        lines = _latex_for_mathtext(latex)
        images = [self.formula(line, 11) for line in lines]
        if not lines or any(image is None for image in images):
            self.text_block(f"$${latex.strip()}$$", size=8.5, family="Mono", height=4.2)
            return
        for png, width, height in images:  # type: ignore[misc]
            scale = min(1.0, self.width / width) if width else 1.0
            width, height = width * scale, height * scale
            if self.pdf.get_y() + height > self.pdf.page_break_trigger:
                self.pdf.add_page()
            self.pdf.image(io.BytesIO(png), x=self.pdf.l_margin + (self.width - width) / 2, y=self.pdf.get_y(),
                           w=width, h=height)
            self.pdf.set_y(self.pdf.get_y() + height + 1)

    def inline_math(self, latex: str, line: float, style: str) -> None:
        lines = _latex_for_mathtext(latex)
        image = self.formula(lines[0], 10) if len(lines) == 1 else None
        if image is None:
            self.font(9, "", "Mono")
            self.words(f" ${latex}$", line)
            self.font(10, style)
            return
        png, width, height = image
        if height > 1.6 * line:
            width, height = width * 1.6 * line / height, 1.6 * line
        if width > self.width:
            width, height = self.width, height * self.width / width
        if self.pdf.get_x() > self.pdf.l_margin + 0.01:
            self.pdf.set_x(self.pdf.get_x() + 0.8)
        if self.pdf.get_x() + width > self.pdf.w - self.pdf.r_margin:
            self.pdf.ln(line)
        if self.pdf.get_y() + line > self.pdf.page_break_trigger:
            self.pdf.add_page()
        x, y = self.pdf.get_x(), self.pdf.get_y()
        self.pdf.image(io.BytesIO(png), x=x, y=y + (line - height) / 2, w=width, h=height)
        self.pdf.set_xy(x + width + 0.4, y)

    # -- markdown -------------------------------------------------------------------------------------------------
    def markdown(self, text: str) -> None:
        """Markdown with its math rendered; raw HTML is shown as text, links and images are not followed."""
        from markdown_it import MarkdownIt

        formulas: List[Tuple[str, bool]] = []

        def hide(match: re.Match) -> str:
            display = match.group(1) is not None
            formulas.append((match.group(1) if display else match.group(2), display))
            token = f"MATHPH{len(formulas) - 1}Z"
            return f"\n\n{token}\n\n" if display else token

        hidden = _MATH.sub(hide, text)
        parser = MarkdownIt("commonmark", {"html": False}).enable("table")
        tokens = parser.parse(hidden)
        indent: List[float] = []
        numbers: List[Optional[int]] = []
        style: List[str] = []
        row: List[str] = []
        rows: List[List[str]] = []
        in_table = False
        left = self.pdf.l_margin

        def plain(token: Any) -> str:
            return _PLACEHOLDER.sub(lambda m: f"${formulas[int(m.group(1))][0]}$", token.content)

        for token in tokens:
            kind = token.type
            if kind in ("bullet_list_open", "ordered_list_open"):
                indent.append(6.0)
                numbers.append(int(token.attrGet("start") or 1) if kind == "ordered_list_open" else None)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                indent.pop()
                numbers.pop()
            elif kind == "list_item_open":
                self.pdf.l_margin = left + sum(indent[:-1])
                self.pdf.set_x(self.pdf.l_margin)
                self.font(10)
                marker = "•" if numbers[-1] is None else f"{numbers[-1]}."
                if numbers[-1] is not None:
                    numbers[-1] = int(numbers[-1]) + 1
                self.pdf.cell(indent[-1], 5, marker)
                self.pdf.l_margin = left + sum(indent)
                style.append("list")
            elif kind == "list_item_close":
                style.pop()
            elif kind == "heading_open":
                style.append(token.tag)
            elif kind == "heading_close":
                style.pop()
                self.pdf.ln(1.5)
            elif kind == "blockquote_open":
                indent.append(5.0)
                numbers.append(None)
                self.pdf.l_margin = left + sum(indent)
            elif kind == "blockquote_close":
                indent.pop()
                numbers.pop()
                self.pdf.l_margin = left + sum(indent)
            elif kind == "paragraph_close":
                self.pdf.ln(6.5)
            elif kind in ("fence", "code_block"):
                self.pdf.l_margin = left + sum(indent)
                self.text_block(token.content.rstrip("\n"), size=8.5, family="Mono", height=4.2)
                self.pdf.ln(2)
            elif kind == "hr":
                self.pdf.ln(2)
                self.pdf.line(self.pdf.l_margin, self.pdf.get_y(), self.pdf.w - self.pdf.r_margin, self.pdf.get_y())
                self.pdf.ln(3)
            elif kind == "table_open":
                rows, in_table = [], True
            elif kind == "tr_open":
                row = []
            elif kind == "tr_close":
                rows.append(row)
            elif kind == "inline" and in_table:
                row.append(" ".join(plain(token).split()))
            elif kind == "table_close":
                self.table(rows)
                rows, in_table = [], False
            elif kind == "inline":
                size = {"h1": 14, "h2": 13, "h3": 12}.get(style[-1] if style else "", 10)
                bold = "B" if style and style[-1].startswith("h") else ""
                self.inline(token, formulas, size, bold)
        self.pdf.l_margin = left
        self.pdf.set_x(left)

    def inline(self, token: Any, formulas: List[Tuple[str, bool]], size: float, base: str) -> None:
        """One paragraph or heading: emphasis, code and inline math kept; links shown as their text only."""
        line = size * 0.5
        self.pdf.set_x(max(self.pdf.get_x(), self.pdf.l_margin))
        bold, italic = 0, 0
        children = token.children or []
        if len(children) == 1 and children[0].type == "text":
            match = _PLACEHOLDER.fullmatch(children[0].content.strip())
            if match and formulas[int(match.group(1))][1]:
                self.display_math(formulas[int(match.group(1))][0])
                return
        for child in children:
            kind = child.type
            style = base + ("B" if bold and "B" not in base else "") + ("I" if italic else "")
            if kind == "strong_open":
                bold += 1
            elif kind == "strong_close":
                bold = max(0, bold - 1)
            elif kind == "em_open":
                italic += 1
            elif kind == "em_close":
                italic = max(0, italic - 1)
            elif kind == "softbreak":
                self.font(size, style)
                self.words(" ", line)
            elif kind == "hardbreak":
                self.pdf.ln(line)
            elif kind == "code_inline":
                self.font(size * 0.9, "", "Mono")
                self.words(child.content, line)
            elif kind == "image":
                self.font(size, "I")
                self.words(f"[image: {child.content}]", line)
            elif kind in ("text", "html_inline"):
                parts = _PLACEHOLDER.split(child.content)
                for index, part in enumerate(parts):
                    if index % 2:
                        latex, display = formulas[int(part)]
                        if display:
                            self.pdf.ln(line)
                            self.display_math(latex)
                        else:
                            self.inline_math(latex, line, style)
                    elif part:
                        self.font(size, style)
                        self.words(part, line)
        self.pdf.ln(line)

    def table(self, rows: List[List[str]]) -> None:
        """A markdown table as aligned monospace text (robust for any number of columns)."""
        if not rows:
            return
        columns = max(len(row) for row in rows)
        widths = [max(len(row[i]) if i < len(row) else 0 for row in rows) for i in range(columns)]
        lines = []
        for number, row in enumerate(rows):
            cells = [(row[i] if i < len(row) else "").ljust(widths[i]) for i in range(columns)]
            lines.append(" | ".join(cells).rstrip())
            if number == 0:
                lines.append("-+-".join("-" * width for width in widths))
        longest = max(len(line) for line in lines)
        size = max(5.0, min(8.5, self.width / max(1, longest) / 0.6 * 72 / 25.4))
        self.text_block("\n".join(lines), size=size, family="Mono", height=size * 0.45)
        self.pdf.ln(2)

    # -- pages ----------------------------------------------------------------------------------------------------
    def figure(self, png: bytes) -> bool:
        """A PNG the notebook showed, checked and re-encoded (never trusted as it is); False if unusable."""
        try:
            from PIL import Image

            with Image.open(io.BytesIO(png)) as image:
                if image.format != "PNG" or image.size[0] * image.size[1] > MAX_FIGURE_PIXELS:
                    return False
                image.load()
                clean = image.convert("RGB")
            buffer = io.BytesIO()
            clean.save(buffer, format="PNG")
            width = self.width * 0.85
            height = width * clean.size[1] / max(1, clean.size[0])
            if height > 150:
                width, height = width * 150 / height, 150.0
            if self.pdf.get_y() + height > self.pdf.page_break_trigger:
                self.pdf.add_page()
            self.pdf.image(buffer, x=self.pdf.l_margin + (self.width - width) / 2, y=self.pdf.get_y(), w=width,
                           h=height)
            self.pdf.set_y(self.pdf.get_y() + height + 2)
            return True
        except Exception:  # a corrupt or hostile image: leave it out, say so
            return False

    def answer(self, text: str) -> None:
        """The student's answer: markdown with math when it can be typeset, plain text otherwise."""
        shown = text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN]
        if len(shown) <= MAX_MARKDOWN:
            page, y = self.pdf.page_no(), self.pdf.get_y()
            try:
                self.markdown(shown)
            except Exception:  # never a crash: say what happened and show the text as it is
                self.pdf.l_margin = 18
                if (self.pdf.page_no(), self.pdf.get_y()) != (page, y):
                    self.pdf.ln(3)
                self.text_block("(This answer could not be typeset; here it is as plain text.)", 8.5, "I")
                self.text_block(shown, size=9, height=4.4)
        else:
            self.text_block("(A long answer: shown as plain text.)", 8.5, "I")
            self.text_block(shown, size=9, height=4.4)
        if len(text) > MAX_SHOWN:
            self.text_block(f"(Answer shortened: the notebook holds {len(text):,} characters; the first "
                            f"{MAX_SHOWN:,} are shown.)", 8.5, "I")


def _points(points: float) -> str:
    return f"{points:g} point" + ("" if points == 1 else "s")


def render(entries: Sequence[Mapping[str, Any]], header: Mapping[str, str], template: bool = False
           ) -> Tuple[bytes, List[PageRange]]:
    """The PDF of ``entries`` and where each question sits.

    Each entry has ``number``, ``title``, ``points``, ``prompt`` and, unless ``template``, ``status``
    (``answered``, ``unanswered`` or ``missing``), ``answer`` (text) and ``figure`` (PNG bytes or None), and
    ``notebook`` (its file name). ``header`` has ``name`` and ``student_id``.
    """
    writer = _Writer()
    pdf = writer.pdf
    writer.footer_text = TITLE
    pdf.add_page()
    writer.text_block(TITLE + (" (template)" if template else ""), size=16, style="B", height=8)
    pdf.ln(2)
    name = header.get("name", "") or ("" if template else "(no name: type it in the first cell of the notebook)")
    student_id = header.get("student_id", "") or ("" if template else "(no student ID)")
    writer.text_block(f"Name: {name}", size=11, height=6)
    writer.text_block(f"Student ID: {student_id}", size=11, height=6)
    pdf.ln(3)
    total = sum(float(entry.get("points", 0)) for entry in entries)
    writer.text_block(f"{len(entries)} written questions, {_points(total)}. Each question starts on a new page, "
                      "in this order:", size=10)
    pdf.ln(1)
    for entry in entries:
        status = "" if template else {"answered": "", "unanswered": "   (not answered)",
                                      "missing": "   (answer cell missing)"}.get(str(entry.get("status")), "")
        writer.text_block(f"{entry['number']}  {entry['title']}  ({_points(float(entry['points']))}){status}",
                          size=9.5, height=4.8)
    ranges: List[PageRange] = []
    for entry in entries:
        label = f"{entry['number']} {entry['title']}"
        pdf.add_page()  # draws the footer of the page before: change the footer's text after it
        writer.footer_text = f"Question {label}"
        first = pdf.page_no()
        pdf.start_section(writer.glyphs.clean(f"Question {label}"[:120]))
        writer.text_block(f"Question {label}", size=14, style="B", height=7)
        writer.text_block(f"{_points(float(entry['points']))} · {entry.get('notebook', '')}", size=9, style="I")
        pdf.ln(2)
        prompt = str(entry.get("prompt", ""))
        prompt = "\n".join(line for line in prompt.splitlines() if not line.lstrip().startswith("#"))
        if prompt.strip():
            pdf.set_text_color(60)
            writer.answer(prompt.strip())
            pdf.set_text_color(0)
        pdf.ln(1)
        pdf.set_draw_color(150)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.set_draw_color(0)
        pdf.ln(3)
        writer.text_block("Answer", size=11, style="B", height=6)
        status = str(entry.get("status", "unanswered"))
        if template:
            writer.text_block("(The student's answer appears here, on as many pages as it needs.)", 9.5, "I")
        elif status == "answered":
            writer.answer(str(entry.get("answer", "")))
        elif status == "missing":
            writer.text_block(f"No answer: the answer cell of this question is not in {entry.get('notebook', '')} "
                              "(deleted, or the notebook is missing).", 10, "B")
        else:
            writer.text_block("No answer: this question is still at YOUR ANSWER HERE.", 10, "B")
        figure = entry.get("figure")
        if not template and isinstance(figure, (bytes, bytearray)):
            pdf.ln(3)
            writer.text_block("The figure this question reports on, as your notebook shows it:", 9, "I")
            if not writer.figure(bytes(figure)):
                writer.text_block("(The figure could not be read.)", 9, "I")
        ranges.append(PageRange(str(entry["number"]), str(entry["title"]), float(entry["points"]), first,
                                pdf.page_no()))
    return bytes(pdf.output()), ranges


def write(target: Path, entries: Sequence[Mapping[str, Any]], header: Mapping[str, str], template: bool = False
          ) -> List[PageRange]:
    """Write the PDF to ``target`` (atomically) and return the page range of every question."""
    import os

    data, ranges = render(entries, header, template)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, target)
    return ranges


def outline_text(ranges: Sequence[PageRange]) -> str:
    """The outline as a markdown table: question, pages, points."""
    lines = ["| question | pages | points |", "|---|---|---:|"]
    for item in ranges:
        pages = str(item.first) if item.first == item.last else f"{item.first}–{item.last}"
        lines.append(f"| {item.number} {item.title} | {pages} | {item.points:g} |")
    return "\n".join(lines) + "\n"
