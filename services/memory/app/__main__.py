"""`python -m app`: serve on $PORT (the container's command)."""

import uvicorn

from app.settings import Settings

if __name__ == "__main__":
    uvicorn.run("app.main:app", host="0.0.0.0", port=Settings().port)  # noqa: S104 - inside a container
