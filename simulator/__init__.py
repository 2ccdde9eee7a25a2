"""The external-world simulator: payment gateways, logistics partners and SMS/e-mail over HTTP.

A separate process (`python -m simulator`) that imports nothing from the Django project.
"""
