"""Refuse options the generated code cannot use, naming the option and what is allowed."""

import re
import sys

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")

problems = []
if not NAME.match("{{ cookiecutter.service_name }}"):
    problems.append("service_name: lower-case letters, digits, '-' and '_', starting with a letter")
if not "{{ cookiecutter.service_port }}".isdigit() or not 0 < int("{{ cookiecutter.service_port }}") < 65536:
    problems.append("service_port: a TCP port number")
for callee in "{{ cookiecutter.calls }}".replace(" ", "").split(","):
    if callee and not NAME.match(callee):
        problems.append(f"calls: {callee!r} is not a service name (comma-separated names, e.g. memory)")
if problems:
    sys.exit("cookiecutter python-service: " + "; ".join(problems))
