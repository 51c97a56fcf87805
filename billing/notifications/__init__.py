"""Who is told what, and how: mail now (bodies in templates/emails/billing/)."""
