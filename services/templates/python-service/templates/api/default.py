"""The service's own API (the template's `templates/api/<service_name>.py`, when it has one)."""

from fastapi import APIRouter

router = APIRouter()
