"""Forms for the pages outside the wizard. Used by the JSON API too, so both validate alike."""

from __future__ import annotations

from django import forms

from ml_platform.api import BoundedJSONDecoder
from ml_platform.etl.sources import ConnectionParams
from ml_platform.etl.sources.policy import PolicyViolation, enforce
from ml_platform.models import Connection
from ml_platform.services.sources import policy

DEFAULT_PORTS = {Connection.Engine.POSTGRESQL: 5432, Connection.Engine.MYSQL: 3306}
# Changing any of these points the connection somewhere else: the saved password does not follow.
ENDPOINT_FIELDS = ("engine", "host", "port", "username", "options")


class ConnectionForm(forms.ModelForm):
    # Write-only: never rendered back; blank on edit keeps the stored password.
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        required=False,
        max_length=1024,
        help_text="Leave blank to keep the current password.",
    )
    options = forms.JSONField(required=False, initial=dict, decoder=BoundedJSONDecoder, help_text='Driver options as JSON, e.g. {"sslmode": "require"}; only the allow-listed options are accepted')

    class Meta:
        model = Connection
        # The password is a plain form field, never copied onto the instance by the ModelForm.
        fields = ["name", "engine", "host", "port", "database", "username", "options"]
        labels = {"database": "Database (file path for SQLite)"}

    field_order = ["name", "engine", "host", "port", "database", "username", "password", "options"]

    def __init__(self, *args, workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["port"].widget.attrs.update({"min": 1, "max": 65535})
        if self.instance.pk is None:
            self.fields["password"].help_text = ""

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Connection.objects.filter(workspace=self.workspace, name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("This workspace already has a connection with this name.")
        return name

    def clean_host(self) -> str:
        # A pasted connection URL would carry its password into a field that is stored in clear and shown
        # on every page; "/path" stays allowed (a PostgreSQL socket directory).
        host = (self.cleaned_data.get("host") or "").strip()
        if "://" in host or "@" in host or any(ch.isspace() for ch in host):
            # Nor is it rendered back into the re-displayed form.
            self.data = self.data.copy()
            self.data[self.add_prefix("host")] = ""
            raise forms.ValidationError(
                "Enter only the host name or IP address, not a connection URL: put the user name, password and "
                "database in their own fields."
            )
        return host

    def clean_port(self) -> int | None:
        port = self.cleaned_data.get("port")
        if port is not None and not 1 <= port <= 65535:
            raise forms.ValidationError("Port must be between 1 and 65535.")
        return port

    def clean_options(self) -> dict:
        value = self.cleaned_data.get("options") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Options must be a JSON object.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        engine = data.get("engine")
        if engine in DEFAULT_PORTS:
            if not data.get("host") and "host" not in self.errors:
                self.add_error("host", "Enter the database host.")
            if not data.get("port"):
                data["port"] = DEFAULT_PORTS[engine]
        if not self.errors:
            self._check_policy(data)
        if self.instance.pk and not data.get("password") and self.instance.password:
            self._require_password_for_new_endpoint(data)
        return data

    def _check_policy(self, data: dict) -> None:
        """Where the connection may go and with which options: the server's source policy."""
        params = ConnectionParams(engine=data["engine"], host=data.get("host") or "", port=data.get("port"),
                                  database=data.get("database") or "", username=data.get("username") or "",
                                  options=data.get("options") or {})
        try:
            enforce(params, policy())
        except PolicyViolation as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)

    def _require_password_for_new_endpoint(self, data: dict) -> None:
        """A stored password is only ever sent to the endpoint it was saved for."""
        moved = [self.fields[key].label or key for key in ENDPOINT_FIELDS
                 if key in data and (data[key] or None) != (getattr(self.instance, key) or None)]
        if moved:
            self.add_error("password", "Enter the password again: the saved one is only sent to the server it was "
                                       f"saved for, and {', '.join(str(m).lower() for m in moved)} changed.")
