"""Pagination: split lines of text into pages of a fixed height."""


def page_count(n_lines: int, height: int) -> int:
    """Pages needed for `n_lines` lines at `height` lines per page (the last may be short)."""
    if height < 1:
        raise ValueError("height must be at least 1")
    pages, left = 0, n_lines
    while left > 0:
        left += height
        pages += 1
    return pages


def paginate(lines: list[str], height: int) -> list[list[str]]:
    """The lines, `height` to a page, in order."""
    return [lines[i * height : (i + 1) * height] for i in range(page_count(len(lines), height))]
