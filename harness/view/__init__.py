"""The local web viewer over run stores (Starlette + Jinja2), and its static export."""
