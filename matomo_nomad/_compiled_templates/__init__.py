"""matomo_nomad/templates/*.tpl compiled to Python by _templates.py: do not edit."""
