//! The console's pages (maud: compile-time templates, every value escaped).

use super::session::Signed;
use crate::key_admin::IssuedKey;
use crate::scopes::{Scope, Scopes};
use crate::store::KeyRecord;
use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

type Page = Html<String>;

fn layout(title: &str, signed: Option<&Signed>, body: Markup) -> Page {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · FleetMind console" }
                    link rel="stylesheet" href="/console/console.css";
                }
                body {
                    nav {
                        strong { "FleetMind console" }
                        @if let Some(signed) = signed {
                            form.inline method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(signed.csrf);
                                span.note { "Signed in with " (signed.caller.key_prefix) "… " }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main {
                        h1 { (title) }
                        (body)
                    }
                    script src="/console/copy.js" {}
                }
            }
        }
        .into_string(),
    )
}

fn when(at: Option<DateTime<Utc>>, none: &str) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| none.to_owned())
}

fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.csrf); }
}

/// A block of text with a copy button (hidden until the script runs).
fn copyable(id: &str, text: &str) -> Markup {
    html! {
        pre id=(id) { (text) }
        button type="button" data-copy=(id) hidden { "Copy" }
    }
}

/// Checkboxes for the scopes `held` (admin apart), for the form `form`.
fn scope_boxes(form: &str, held: Scopes) -> Markup {
    html! {
        fieldset {
            legend { "Scopes" }
            @for scope in Scope::ALL.into_iter().filter(|s| *s != Scope::Admin && held.allows(*s)) {
                @let id = format!("{form}-scope-{}", scope.as_str().replace(':', "-"));
                label.check for=(id) {
                    input type="checkbox" id=(id) name="scopes" value=(scope.as_str()) checked;
                    " " (scope.as_str())
                }
            }
        }
    }
}

/// The three limit fields (issue 13), labelled; ids start with `prefix`.
fn limit_inputs(prefix: &str, hint: &str) -> Markup {
    let labels = [
        "Rate limit per minute",
        "Monthly quota (units)",
        "Allowed IPs, e.g. 10.0.0.0/8,192.0.2.7",
    ];
    html! {
        @for (name, label) in super::limits::FIELDS.into_iter().zip(labels) {
            @let id = format!("{prefix}-{}", name.replace('_', "-"));
            label for=(id) { (label) " (" (hint) ")" }
            input type="text" id=(id) name=(name);
        }
    }
}

pub fn sign_in(error: Option<&str>) -> Page {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(error) = error {
                p.error role="alert" { "Refused: " (error) }
            }
            form method="post" action="/console/login" {
                label for="api_key" { "API key" }
                input type="password" id="api_key" name="api_key" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
            p.note { "Sign in with your fm_ API key. The key is sent in the form body, never in a URL." }
        },
    )
}

pub fn problem(title: &str, message: &str) -> Page {
    layout(
        title,
        None,
        html! {
            p.error role="alert" { (message) }
            p { a href="/console/keys" { "Back to the console" } }
        },
    )
}

/// The keys page; `now` (the server's clock) says which keys are active.
pub fn keys(signed: &Signed, keys: &[KeyRecord], filter: Option<&str>, now: DateTime<Utc>) -> Page {
    let admin = signed.is_admin();
    layout(
        "API keys",
        Some(signed),
        html! {
            @if admin {
                form method="get" action="/console/keys" {
                    label for="filter-email" { "Filter by email" }
                    input type="email" id="filter-email" name="email" value=(filter.unwrap_or(""));
                    button type="submit" { "Filter" }
                }
            }
            table {
                thead { tr {
                    th { "Prefix" } th { "Name" } th { "Email" } th { "Scopes" } th { "State" }
                    th { "Created" } th { "Last used" } th { "Expires" } th { "Limits" } th { "Actions" }
                } }
                tbody {
                    @for key in keys {
                        @let state = key.state(now);
                        tr {
                            td data-label="Prefix" { code { (key.key_prefix) "…" } }
                            td data-label="Name" { (key.name.as_deref().unwrap_or("")) }
                            td data-label="Email" { (key.email) }
                            td data-label="Scopes" { (key.scopes) }
                            td data-label="State" { (format!("{state:?}").to_lowercase()) }
                            td data-label="Created" { (when(key.created_at, "")) }
                            td data-label="Last used" { (when(key.last_used_at, "never")) }
                            td data-label="Expires" { (when(key.expires_at, "never")) }
                            td data-label="Limits" { (key.limits) }
                            td data-label="Actions" {
                                @if state == crate::store::KeyState::Active {
                                    form method="post" action=(format!("/console/keys/{}/rotate", key.key_id)) {
                                        (csrf(signed))
                                        @let id = format!("grace-{}", key.key_id);
                                        label for=(id) { "Grace minutes" }
                                        input type="number" id=(id) name="grace_minutes" min="0" value="60";
                                        button type="submit" { "Rotate" }
                                    }
                                    @if admin {
                                        form method="post" action=(format!("/console/keys/{}/limits", key.key_id)) {
                                            (csrf(signed))
                                            (limit_inputs(&format!("limits-{}", key.key_id), "blank: unchanged, none: remove"))
                                            button type="submit" { "Set limits" }
                                        }
                                    }
                                    form method="post" action=(format!("/console/keys/{}/revoke", key.key_id)) {
                                        (csrf(signed))
                                        button type="submit" { "Revoke " (key.key_prefix) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Create a key" }
            form method="post" action="/console/keys" {
                (csrf(signed))
                label for="key-name" { "Name" }
                input type="text" id="key-name" name="name" placeholder="laptop";
                (scope_boxes("key", signed.caller.scopes))
                label for="key-expires" { "Expires in days (blank: never)" }
                input type="number" id="key-expires" name="expires_in_days" min="1";
                @if admin {
                    label for="key-email" { "Email (blank: your own)" }
                    input type="email" id="key-email" name="email";
                    (limit_inputs("key-limits", "blank: none"))
                    label.check for="key-admin" {
                        input type="checkbox" id="key-admin" name="admin" value="true";
                        " admin (every scope and the admin tools)"
                    }
                }
                @if !admin {
                    p.note { "A key you create gets your key's limits: " (signed.caller.limits) "." }
                }
                div { button type="submit" { "Create key" } }
            }
            @if admin {
                h2 { "Invite someone" }
                form method="post" action="/console/invites" {
                    (csrf(signed))
                    label for="invite-email" { "Email" }
                    input type="email" id="invite-email" name="email" required;
                    (scope_boxes("invite", signed.caller.scopes))
                    label for="invite-hours" { "Link valid for hours" }
                    input type="number" id="invite-hours" name="expires_in_hours" min="1" value="24";
                    div { button type="submit" { "Create invitation" } }
                }
            }
        },
    )
}

/// The page that shows a new key, once.
pub fn key_issued(title: &str, signed: Option<&Signed>, issued: &IssuedKey, mcp_url: &str) -> Page {
    let key = issued.api_key.expose();
    let header_form = crate::desktop_config::header_form(mcp_url, key);
    let query_form = crate::desktop_config::query_form(mcp_url, key);
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let curl = format!(
        "curl -s {mcp_url} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \
         -H 'Accept: application/json, text/event-stream' \
         -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'"
    );
    let record = &issued.record;
    layout(
        title,
        signed,
        html! {
            p.error role="status" { "This key is shown only this once. Store it now." }
            (copyable("api-key", key))
            p { "Prefix " code { (record.key_prefix) } ", for " (record.email) ", scopes " (record.scopes)
                ", expires " (when(record.expires_at, "never")) "." }
            h2 { "Claude Desktop" }
            p { "In claude_desktop_config.json, the key in a header:" }
            (copyable("config-header", &pretty(&header_form)))
            p { "Or the key in the URL (for clients that cannot send headers):" }
            (copyable("config-query", &pretty(&query_form)))
            h2 { "Try it with curl" }
            (copyable("curl", &curl))
            p { a href="/console/keys" { "Go to the keys" } }
        },
    )
}

pub fn invite_created(
    signed: &Signed,
    link: &str,
    email: &str,
    scopes: Scopes,
    expires: i64,
) -> Page {
    let expires = when(DateTime::from_timestamp(expires, 0), "");
    layout(
        "Invitation created",
        Some(signed),
        html! {
            p.error role="status" { "This link is shown only this once. Send it to " (email) "; it works once, until " (expires) "." }
            (copyable("invite-link", link))
            p { "Scopes: " (scopes) }
            p { a href="/console/keys" { "Back to the keys" } }
        },
    )
}

pub fn claim(action: &str, email: &str, scopes: Scopes) -> Page {
    layout(
        "Claim your key",
        None,
        html! {
            p { "This invitation issues one API key for " strong { (email) } " with the scopes " (scopes) "." }
            form method="post" action=(action) {
                label for="claim-name" { "A name for the key" }
                input type="text" id="claim-name" name="name" placeholder="my laptop";
                div { button type="submit" { "Claim my key" } }
            }
        },
    )
}
