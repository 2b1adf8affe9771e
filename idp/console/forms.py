"""The pages' forms (Flask-WTF: each carries its CSRF token, checked on submit)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, Length, Optional, ValidationError

from idp.console.guides import GUIDES


class ChooseIdpForm(FlaskForm):
    idp = RadioField(
        "Your identity provider",
        choices=[SelectChoice(g.key, g.name) for g in GUIDES.values()],
        validators=[DataRequired(message="Choose your identity provider")],
    )


class SamlIdpForm(FlaskForm):
    metadata_url = StringField(
        "IdP metadata URL", validators=[Optional(), URL(require_tld=False), Length(max=2000)]
    )
    metadata_xml = TextAreaField(
        "Or the metadata XML", validators=[Optional(), Length(max=200_000)]
    )

    def validate_metadata_url(self, field: Any) -> None:
        if not field.data and not self.metadata_xml.data:
            raise ValidationError("Give the metadata URL, or paste the metadata XML")


class OidcIdpForm(FlaskForm):
    issuer = StringField(
        "Issuer URL", validators=[DataRequired(), URL(require_tld=False), Length(max=2000)]
    )
    client_id = StringField("Client ID", validators=[DataRequired(), Length(max=255)])
    client_secret = PasswordField("Client secret", validators=[DataRequired(), Length(max=2000)])


class ConfirmForm(FlaskForm):
    """A button: only its CSRF token is checked."""


class DomainForm(FlaskForm):
    domain = StringField("Domain", validators=[DataRequired(), Length(max=253)])


class InviteForm(FlaskForm):
    email = StringField("Email address", validators=[DataRequired(), Length(max=320)])
    role = SelectField("Their role", validators=[DataRequired()])


class RoleForm(FlaskForm):
    role = SelectField("New role", validators=[DataRequired()])
