"""A statement as CSV (for spreadsheets and accounting tools) and as PDF (to file or forward).

CSV columns (DESIGN.md): date, kind, description, reference, amount, balance; the first row is
the opening balance and the last the closing balance (amount empty). Amounts are decimal text in
the currency's major unit, exact to the nano: "12.50", "-0.000001".

The PDF is drawn with ReportLab (no system libraries to install) in the Vera fonts ReportLab
ships, so a name in any Latin script prints as typed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.money import Money, money_decimal
from billing.statements.selectors import Statement

CSV_COLUMNS = ["date", "kind", "description", "reference", "amount", "balance"]


def amount_text(money: Money) -> str:
    """Exact decimal text in the major unit, with at least the currency's usual decimals."""
    return format(money_decimal(money), "f")


def statement_rows(statement: Statement) -> list[list[str]]:
    """The CSV's rows, header first."""
    rows = _rows(statement, amount=amount_text, text=str, capitalise=False)
    return [CSV_COLUMNS, *rows]


def _rows(
    statement: Statement,
    *,
    amount: Callable[[Money], str],
    text: Callable[[str], Any],
    capitalise: bool,
) -> list[list[Any]]:
    """Opening balance, a row per line, closing balance: what the CSV and the PDF both list,
    each with its own way of writing amounts and free text."""
    opening = "Opening balance" if capitalise else "opening balance"
    closing = "closing balance so far" if statement.so_far else "closing balance"
    closing = closing.capitalize() if capitalise else closing
    rows: list[list[Any]] = [
        [statement.start.date().isoformat(), opening, "", "", "", amount(statement.opening)]
    ]
    for line in statement.lines:
        rows.append(
            [
                line.day.isoformat(),
                line.kind,
                text(line.description),
                text(line.reference),
                amount(line.amount),
                amount(line.balance),
            ]  # fmt: skip
        )
    rows.append([statement.last_day.isoformat(), closing, "", "", "", amount(statement.closing)])
    return rows


def statement_csv(statement: Statement) -> str:
    return csv_text(statement_rows(statement))


def csv_text(rows: list[list[str]]) -> str:
    """Rows as CSV that a spreadsheet opens as text, never as formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_spreadsheet_safe(cell) for cell in row])
    return out.getvalue()


def _spreadsheet_safe(cell: str) -> str:
    """A memo or name starting with = + @ (or a tab) would run as a formula in a spreadsheet
    (CSV injection); a quote in front keeps it text. Amounts ("-1.50") are numbers, not text."""
    if cell[:1] in ("=", "+", "@", "\t", "\r") or (cell[:1] == "-" and not _is_number(cell)):
        return "'" + cell
    return cell


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


_FONTS = Path(reportlab.__file__).parent / "fonts"


def _register_fonts() -> None:
    if "Vera" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("Vera", str(_FONTS / "Vera.ttf")))
        pdfmetrics.registerFont(TTFont("Vera-Bold", str(_FONTS / "VeraBd.ttf")))


def statement_pdf(statement: Statement, *, title: str, provider: str) -> bytes:
    """The statement on A4 pages: who it is for, the period, the lines, the totals."""
    _register_fonts()
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm, topMargin=16 * mm,
        bottomMargin=16 * mm, title=title, author=provider,
    )  # fmt: skip
    text = ParagraphStyle("text", fontName="Vera", fontSize=9, leading=12)
    small = ParagraphStyle("small", parent=text, fontSize=8, leading=10)
    heading = ParagraphStyle("heading", parent=text, fontName="Vera-Bold", fontSize=14, leading=18)
    story = [Paragraph(_escape(title), heading), Spacer(1, 2 * mm)]
    for line in _header_lines(statement, provider):
        story.append(Paragraph(line, text))
    story.append(Spacer(1, 5 * mm))
    story.append(_table(statement, small))
    document.build(story, onLaterPages=_page_number, onFirstPage=_page_number)
    return out.getvalue()


def _header_lines(statement: Statement, provider: str) -> list[str]:
    account = statement.account
    who = account.legal_company_name or account.user.get_full_name() or account.user.email
    lines = [f"<b>{_escape(who)}</b>", _escape(account.user.email)]
    lines += [_escape(part) for part in account.address.splitlines() if part.strip()]
    if account.country:
        lines.append(_escape(account.country))
    if account.tax_id:
        lines.append(f"Tax id: {_escape(account.tax_id)}")
    period = f"{statement.start:%-d %B %Y} to {statement.last_day:%-d %B %Y} (UTC)"
    so_far = ", so far: the month is not over" if statement.so_far else ""
    lines += [
        "",
        f"Period: {period}{so_far}",
        f"Currency: {statement.currency}. From {_escape(provider)}.",
        f"Opening balance <b>{_escape(str(statement.opening))}</b>; closing balance "
        f"<b>{_escape(str(statement.closing))}</b>{' so far' if statement.so_far else ''}.",
    ]
    return lines


def _table(statement: Statement, style: ParagraphStyle) -> Table:
    header: list[object] = ["Date", "Kind", "Description", "Reference", "Amount", "Balance"]
    wrapped = _rows(
        statement, amount=str, text=lambda t: Paragraph(_escape(t), style), capitalise=True
    )
    rows: list[list[object]] = [header, *wrapped]
    widths = [20 * mm, 24 * mm, 58 * mm, 34 * mm, 21 * mm, 21 * mm]
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), "Vera", 8),
                ("FONT", (0, 0), (-1, 0), "Vera-Bold", 8),
                ("FONT", (0, 1), (-1, 1), "Vera-Bold", 8),
                ("FONT", (0, -1), (-1, -1), "Vera-Bold", 8),
                ("ALIGN", (4, 0), (5, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
                ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f3f5f8")]),
            ]
        )
    )
    return table


def _page_number(canvas, document) -> None:  # type: ignore[no-untyped-def]
    canvas.saveState()
    canvas.setFont("Vera", 7)
    canvas.drawRightString(A4[0] - 16 * mm, 9 * mm, f"Page {document.page}")
    canvas.restoreState()


def _escape(text: str) -> str:
    """Paragraphs read a little markup: a developer's memo or name is text, not markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
