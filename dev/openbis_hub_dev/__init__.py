"""Development tools for openbis-hub: the openBIS stand-in and the one-machine demo.

Not part of a deployment: no production image installs this distribution.
"""
