"""Sophia AI {{ cookiecutter.service_name }} service."""
