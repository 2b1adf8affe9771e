"""The pages' forms (Flask-WTF: each carries its CSRF token, checked on submit)."""

from __future__ import annotations

from typing import Any

from flask import abort
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, Length, NumberRange, Optional

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
        "Or the IdP metadata XML", validators=[Optional(), Length(max=200_000)]
    )
    # Or by hand, for an IdP that publishes no metadata.
    idp_entity_id = StringField(
        "The IdP's entity id (issuer)", validators=[Optional(), Length(max=2000)]
    )
    sso_url = StringField(
        "The IdP's SSO URL", validators=[Optional(), URL(require_tld=False), Length(max=2000)]
    )
    idp_certificate = TextAreaField(
        "The IdP's signing certificate (PEM)", validators=[Optional(), Length(max=20_000)]
    )

    def validate(self, extra_validators: Any = None) -> bool:
        """One of three ways, whole: the metadata URL, its XML, or the values by hand (as a
        field-level check it would be skipped for an empty, optional URL)."""
        valid = super().validate(extra_validators)
        by_hand = self.idp_entity_id.data or self.sso_url.data or self.idp_certificate.data
        problem = None
        if not self.metadata_url.data and not self.metadata_xml.data and not by_hand:
            problem = "Give the metadata URL, paste the metadata XML, or give the values by hand"
        elif by_hand and not (
            self.idp_entity_id.data and self.sso_url.data and self.idp_certificate.data
        ):
            problem = "By hand, give the entity id, the SSO URL and the certificate"
        if problem:
            self.metadata_url.errors = [*self.metadata_url.errors, problem]
            return False
        return valid

    def idp_values(self) -> dict[str, Any]:
        """What the service takes: the metadata, or the three values by hand."""
        given: dict[str, Any] = {
            k: getattr(self, k).data
            for k in ("metadata_url", "metadata_xml")
            if getattr(self, k).data
        }
        if self.idp_entity_id.data:
            given.update(
                idp_entity_id=self.idp_entity_id.data.strip(),
                sso_url=self.sso_url.data.strip(),
                idp_certs=[self.idp_certificate.data],
            )
        return given


class OidcIdpForm(FlaskForm):
    issuer = StringField(
        "Issuer URL", validators=[DataRequired(), URL(require_tld=False), Length(max=2000)]
    )
    client_id = StringField("Client ID", validators=[DataRequired(), Length(max=255)])
    client_secret = PasswordField("Client secret", validators=[DataRequired(), Length(max=2000)])

    def idp_values(self) -> dict[str, Any]:
        return {k: getattr(self, k).data for k in ("issuer", "client_id", "client_secret")}


class ConfirmForm(FlaskForm):
    """A button: only its CSRF token is checked."""


def check_button() -> None:
    """A button's post: its CSRF token, or 400 and nothing done."""
    if not ConfirmForm().validate_on_submit():
        abort(400)


class DomainForm(FlaskForm):
    domain = StringField("Domain", validators=[DataRequired(), Length(max=253)])


class InviteForm(FlaskForm):
    email = StringField("Email address", validators=[DataRequired(), Length(max=320)])
    target = SelectField("Invite to", default="org", validators=[DataRequired()])
    role = SelectField("Their role", validators=[DataRequired()])


class RoleForm(FlaskForm):
    role = SelectField("New role", validators=[DataRequired()])


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes (WTForms' documented recipe)."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class SetupLinkForm(FlaskForm):
    intents = MultiCheckboxField(
        "What the link sets up",
        choices=[
            SelectChoice("sso", "Single sign-on"),
            SelectChoice("scim", "Provisioning (SCIM)"),
            SelectChoice("domains", "Domains"),
        ],
        validators=[DataRequired(message="Choose at least one")],
    )
    expires_hours = IntegerField(
        "Valid for (hours)", default=72, validators=[DataRequired(), NumberRange(min=1, max=720)]
    )


class NameForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", validators=[DataRequired(), Length(max=200)])
    role = SelectField("Key role", validators=[DataRequired()])


class RoleCreateForm(FlaskForm):
    key = StringField("Key", validators=[DataRequired(), Length(max=64)])
    name = StringField("Role name", validators=[DataRequired(), Length(max=200)])
    description = StringField("Description", validators=[Optional(), Length(max=500)])
    permissions = MultiCheckboxField("Permissions")


class TeamForm(FlaskForm):
    name = StringField("Team name", validators=[DataRequired(), Length(max=200)])
    parent_id = SelectField("Inside team", validators=[Optional()])


class PolicyForm(FlaskForm):
    key = SelectField("Setting", validators=[DataRequired()])
    value = StringField("New value", validators=[DataRequired(), Length(max=2000)])
    confirmed = HiddenField()


class TransferForm(FlaskForm):
    to_user_id = SelectField("New owner", validators=[DataRequired()])
    confirm = StringField("Type the organization's slug to confirm", validators=[DataRequired()])


class DeleteOrgForm(FlaskForm):
    confirm = StringField("Type the organization's slug to delete it", validators=[DataRequired()])


class OrgCreateForm(FlaskForm):
    slug = StringField("Slug", validators=[DataRequired(), Length(max=63)])
    name = StringField("Organization name", validators=[DataRequired(), Length(max=200)])
    parent = SelectField("Sub-organization of", validators=[Optional()])


class ClientForm(FlaskForm):
    name = StringField("App name", validators=[DataRequired(), Length(max=200)])
    redirect_uri = StringField("Redirect URI", validators=[DataRequired(), Length(max=2000)])
    public = BooleanField("Public client (a browser or mobile app: PKCE, no secret)")


class AttributeMapForm(FlaskForm):
    email = StringField(
        "Email attribute names (comma-separated, first found wins)",
        validators=[Optional(), Length(max=1000)],
    )
    groups = StringField(
        "Groups attribute names (comma-separated)", validators=[Optional(), Length(max=1000)]
    )
