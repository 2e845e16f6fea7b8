//! The HTML of the authorization page: plain server-rendered forms, no JavaScript, every dynamic
//! string escaped.

use std::fmt::Write;

/// Escapes text for an HTML element or a double-quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:36rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.3rem}label{display:block;margin-top:.8rem}\
input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}\
.buttons{margin-top:1.2rem;display:flex;gap:.6rem}button{padding:.5rem 1rem}\
.error{background:#fde8e8;border:1px solid #e0a0a0;padding:.5rem}\
.notice{background:#e8f4fd;border:1px solid #a0c4e0;padding:.5rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem .8rem}dt{font-weight:600}\
dd{margin:0;overflow-wrap:anywhere}code{font-size:.85rem}";

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body><main>\n{body}</main></body></html>\n",
        title = escape(title)
    )
}

fn messages(out: &mut String, error: Option<&str>, notice: Option<&str>) {
    if let Some(e) = error {
        let _ = writeln!(
            out,
            "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
            escape(e)
        );
    }
    if let Some(n) = notice {
        let _ = writeln!(out, "<p class=\"notice\" id=\"notice\">{}</p>", escape(n));
    }
}

/// A page that only explains (a request that cannot be answered with a redirect).
pub fn error_page(service: &str, message: &str) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>{}</h1>", escape(service));
    messages(&mut body, Some(message), None);
    body.push_str("<p>Return to the application and start again.</p>\n");
    document("Authorization error", &body)
}

/// The sign-in step.
pub struct LoginPage<'a> {
    pub service: &'a str,
    pub client: &'a str,
    /// `service` or `credential`.
    pub scope: &'a str,
    pub handle: &'a str,
    pub user: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn login_page(p: &LoginPage<'_>) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>Sign in to {}</h1>", escape(p.service));
    let purpose = if p.scope == "credential" {
        "to authorize signatures with one of your signing keys. After signing in you will see \
         exactly what is to be signed, and confirm it with the key's PIN and one-time code."
    } else {
        "to use the signing service on your behalf."
    };
    let _ = writeln!(
        body,
        "<p><strong id=\"client\">{}</strong> asks you to sign in {purpose}</p>",
        escape(p.client)
    );
    messages(&mut body, p.error, None);
    let _ = writeln!(
        body,
        "<form method=\"post\" action=\"authorize\" autocomplete=\"off\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{handle}\">\n\
         <label for=\"username\">User name</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" autocomplete=\"username\" autofocus>\n\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">",
        handle = escape(p.handle),
        user = escape(p.user.unwrap_or_default()),
    );
    if p.scope == "service" {
        body.push_str(
            "<label><input type=\"checkbox\" id=\"remember\" name=\"remember\" value=\"on\"> \
             Keep me signed in (the application gets a refresh token)</label>\n",
        );
    }
    body.push_str(
        "<div class=\"buttons\"><button type=\"submit\" id=\"login\" name=\"action\" value=\"login\">Sign in</button>\
         <button type=\"submit\" id=\"deny\" name=\"action\" value=\"deny\">Cancel</button></div>\n</form>\n",
    );
    document("Sign in", &body)
}

/// What the consent step shows about the credential.
pub struct CredentialView {
    pub id: String,
    pub description: Option<String>,
    pub key: String,
    pub subject: Option<String>,
    pub scal: String,
}

/// The consent step (scope `credential`).
pub struct ConsentPage<'a> {
    pub service: &'a str,
    pub client: &'a str,
    pub user: &'a str,
    pub handle: &'a str,
    /// The credential the request names; `None`: the signer chooses among `choices` (a
    /// `signatureQualifier` request).
    pub credential: Option<&'a CredentialView>,
    /// The signer's credentials to choose from (when `credential` is `None`).
    pub choices: &'a [CredentialView],
    /// The `signatureQualifier` asked for, if any.
    pub qualifier: Option<&'a str>,
    pub num_signatures: i64,
    /// The hashes as the application sent them (base64url).
    pub hashes: &'a [String],
    /// The documents of `authorization_details` (or of the plain v2 `hashes`): label, if any,
    /// and digest, in order (they replace the bare `hashes` list when present).
    pub documents: &'a [DocumentView],
    pub description: Option<&'a str>,
    pub pin: bool,
    /// `Some("online")` or `Some("offline")` when the credential has an OTP; `Some("any")`
    /// when the signer still chooses the credential.
    pub otp: Option<&'a str>,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

/// A document of `authorization_details` as shown: its label and its digest.
pub struct DocumentView {
    pub label: Option<String>,
    /// The digest as the application sent it (base64).
    pub base64: String,
    /// The same digest in hex (as `sha256sum` prints it).
    pub hex: String,
}

/// The definition list of one credential.
fn credential_rows(body: &mut String, c: &CredentialView) {
    let _ = writeln!(
        body,
        "<dt>Credential</dt><dd><code id=\"credential\">{}</code></dd>",
        escape(&c.id)
    );
    if let Some(d) = &c.description {
        let _ = writeln!(body, "<dt>Key</dt><dd>{}</dd>", escape(d));
    }
    if let Some(s) = &c.subject {
        let _ = writeln!(
            body,
            "<dt>Certificate</dt><dd id=\"subject\">{}</dd>",
            escape(s)
        );
    }
    let _ = writeln!(
        body,
        "<dt>Algorithm</dt><dd>{}</dd>\n<dt>SCAL</dt><dd>{}</dd>",
        escape(&c.key),
        escape(&c.scal),
    );
}

pub fn consent_page(p: &ConsentPage<'_>) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>Authorize signatures</h1>");
    let _ = writeln!(
        body,
        "<p>Signed in to {} as <strong id=\"user\">{}</strong>.</p>\n\
         <p><strong id=\"client\">{}</strong> asks to sign with your key:</p>",
        escape(p.service),
        escape(p.user),
        escape(p.client)
    );
    messages(&mut body, p.error, p.notice);
    body.push_str("<dl>\n");
    if let Some(c) = p.credential {
        credential_rows(&mut body, c);
    } else if let Some(q) = p.qualifier {
        let _ = writeln!(
            body,
            "<dt>Signature type</dt><dd id=\"qualifier\">{}</dd>",
            escape(q)
        );
    }
    let _ = writeln!(
        body,
        "<dt>Signatures</dt><dd id=\"numSignatures\">{}</dd>",
        p.num_signatures
    );
    if let Some(d) = p.description {
        let _ = writeln!(
            body,
            "<dt>Purpose</dt><dd id=\"description\">{}</dd>",
            escape(d)
        );
    }
    body.push_str("</dl>\n");
    if !p.documents.is_empty() {
        let _ = writeln!(
            body,
            "<p>Exactly these {} document(s), one signature each, nothing else:</p>\n<ol id=\"documents\">",
            p.documents.len()
        );
        for (i, d) in p.documents.iter().enumerate() {
            // a digest without a label (the plain v2 `hashes` have none) shows no label line
            let label = d.label.as_deref().map_or_else(String::new, |l| {
                format!(
                    "<strong class=\"label\" id=\"label-{i}\">{}</strong><br>",
                    escape(l)
                )
            });
            let _ = writeln!(
                body,
                "<li>{label}\
                 digest (base64) <code class=\"digest\" id=\"digest-{i}\">{}</code><br>\
                 digest (hex) <code class=\"hex\" id=\"hex-{i}\">{}</code></li>",
                escape(&d.base64),
                escape(&d.hex),
            );
        }
        body.push_str("</ol>\n");
    } else if p.hashes.is_empty() {
        body.push_str("<p>The application did not name the documents' hashes in advance.</p>\n");
    } else {
        let _ = writeln!(
            body,
            "<p>Exactly these {} document hash(es) (base64url), nothing else:</p>\n<ol id=\"hashes\">",
            p.hashes.len()
        );
        for h in p.hashes {
            let _ = writeln!(body, "<li><code>{}</code></li>", escape(h));
        }
        body.push_str("</ol>\n");
    }
    let _ = writeln!(
        body,
        "<form method=\"post\" action=\"authorize\" autocomplete=\"off\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{}\">",
        escape(p.handle)
    );
    if p.credential.is_none() {
        body.push_str(
            "<label for=\"credentialID\">Key to sign with</label>\
             <select id=\"credentialID\" name=\"credentialID\">\n",
        );
        for c in p.choices {
            let _ = writeln!(
                body,
                "<option value=\"{}\">{} ({}, SCAL {}{})</option>",
                escape(&c.id),
                escape(c.description.as_deref().unwrap_or(&c.id)),
                escape(&c.key),
                escape(&c.scal),
                c.subject
                    .as_deref()
                    .map_or_else(String::new, |s| format!(", {}", escape(s))),
            );
        }
        body.push_str("</select>\n");
    }
    if p.pin {
        body.push_str(
            "<label for=\"pin\">PIN of this key</label>\
             <input type=\"password\" id=\"pin\" name=\"PIN\" autocomplete=\"off\" autofocus>\n",
        );
    }
    match p.otp {
        Some("online") => body.push_str(
            "<label for=\"otp\">One-time code (we sent it to you)</label>\
             <input type=\"text\" id=\"otp\" name=\"OTP\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\n",
        ),
        Some("any") => body.push_str(
            "<label for=\"otp\">One-time code, if the key has one (from your app, or sent to you)</label>\
             <input type=\"text\" id=\"otp\" name=\"OTP\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\n",
        ),
        Some(_) => body.push_str(
            "<label for=\"otp\">One-time code from your authenticator app</label>\
             <input type=\"text\" id=\"otp\" name=\"OTP\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\n",
        ),
        None => {}
    }
    body.push_str(
        "<div class=\"buttons\"><button type=\"submit\" id=\"approve\" name=\"action\" value=\"approve\">Sign</button>\
         <button type=\"submit\" id=\"deny\" name=\"action\" value=\"deny\">Refuse</button>",
    );
    if matches!(p.otp, Some("online" | "any")) {
        body.push_str(
            "<button type=\"submit\" id=\"resend\" name=\"action\" value=\"resend\">Send a new code</button>",
        );
    }
    body.push_str("</div>\n</form>\n");
    document("Authorize signatures", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn pages_hold_no_script_and_escape_what_clients_send() {
        let html = login_page(&LoginPage {
            service: "S",
            client: "<script>alert(1)</script>",
            scope: "service",
            handle: "h\"x",
            user: None,
            error: Some("<b>"),
        });
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;") && html.contains("value=\"h&quot;x\""));
        let view = CredentialView {
            id: "id".into(),
            description: None,
            key: "ec-p256".into(),
            subject: Some("CN=<x>".into()),
            scal: "2".into(),
        };
        let html = consent_page(&ConsentPage {
            service: "S",
            client: "C",
            user: "alice",
            handle: "h",
            credential: Some(&view),
            choices: &[],
            qualifier: None,
            num_signatures: 2,
            hashes: &["a<b".into()],
            documents: &[DocumentView {
                label: Some("<script>x</script>".into()),
                base64: "AA==".into(),
                hex: "00".into(),
            }],
            description: Some("</dd><script>"),
            pin: true,
            otp: Some("online"),
            error: None,
            notice: None,
        });
        assert!(!html.contains("<script"));
        assert!(html.contains("id=\"resend\"") && html.contains("CN=&lt;x&gt;"));
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt;") && html.contains("id=\"digest-0\"")
        );
    }
}
