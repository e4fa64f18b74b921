"""The CSS every HTML page of the results shares (report, group, comparison, benchmark): its
own module so that a page's text can be written without importing matplotlib."""

from __future__ import annotations

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:1050px;color:#1d2433}"
    "table{border-collapse:collapse;margin:1rem 0}"
    "th,td{text-align:left;padding:.25rem .7rem;border-bottom:1px solid #ddd}"
    "th{font-weight:600;color:#4a5568}img{max-width:100%}figure{margin:.6rem 0}"
)
