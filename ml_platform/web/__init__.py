"""The HTML views (HTMX pages) and their forms and view helpers."""
