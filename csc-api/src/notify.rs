//! Delivery channels for online OTPs (`credentials/sendOTP`), plugged into the SAM as
//! [`sam::OtpNotifier`]s from the configuration (`otp_outbox`, `otp_webhook_url`).
//!
//! The code travels only to the channel: never into a response, the audit log or the
//! application log (error messages name the channel, never the code).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sam::{OtpDelivery, OtpNotifier};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::OtpChannel;

/// The notifier the configuration asks for.
pub fn from_config(channel: &OtpChannel) -> anyhow::Result<Arc<dyn OtpNotifier>> {
    Ok(match channel {
        OtpChannel::Outbox(path) => Arc::new(FileOutbox::new(path.clone())),
        OtpChannel::Webhook(url) => Arc::new(Webhook::new(url)?),
    })
}

/// The message of one delivery, as JSON: what the outbox line and the webhook body hold.
fn message(d: &OtpDelivery<'_>) -> serde_json::Value {
    json!({
        "at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "credentialID": d.credential_id.to_string(),
        "user": d.user_name,
        "otp": d.code.expose_secret(),
        "expiresIn": d.expires_in,
    })
}

/// Appends one JSON line per code to a file readable only by the server's user (mode 0600):
/// `{"at":…,"credentialID":…,"user":…,"otp":"123456","expiresIn":300}`. The default channel
/// (`DATA_DIR/otp-outbox.log`): for development, tests, and gateways that read a file.
pub struct FileOutbox {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileOutbox {
    pub fn new(path: PathBuf) -> FileOutbox {
        FileOutbox {
            path,
            lock: Mutex::new(()),
        }
    }
}

impl OtpNotifier for FileOutbox {
    fn deliver(&self, d: &OtpDelivery<'_>) -> Result<(), String> {
        let mut line = message(d).to_string();
        line.push('\n');
        let _guard = self
            .lock
            .lock()
            .map_err(|_| "outbox lock poisoned".to_owned())?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| format!("cannot open the OTP outbox {}: {e}", self.path.display()))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| format!("cannot write the OTP outbox {}: {e}", self.path.display()))
    }
}

/// POSTs the JSON message to a gateway (an SMS or e-mail service's webhook); any 2xx answer is
/// a delivery. 10 s timeout.
pub struct Webhook {
    url: String,
    client: reqwest::blocking::Client,
}

impl Webhook {
    pub fn new(url: &str) -> anyhow::Result<Webhook> {
        anyhow::ensure!(
            url.starts_with("https://") || url.starts_with("http://"),
            "otp_webhook_url must be an http(s) URL"
        );
        Ok(Webhook {
            url: url.to_owned(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }
}

impl OtpNotifier for Webhook {
    fn deliver(&self, d: &OtpDelivery<'_>) -> Result<(), String> {
        // reqwest's errors name the URL, never the body
        let resp = self
            .client
            .post(&self.url)
            .json(&message(d))
            .send()
            .map_err(|e| format!("OTP webhook: {}", e.without_url()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("OTP webhook answered {}", resp.status()))
        }
    }
}
