"""`python -m app`: serve on $PORT (the container's command); see app/server.py."""

from app.server import main

if __name__ == "__main__":
    main()
