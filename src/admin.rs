//! Administrative commands run from the command line (`rapport admin …`).

use anyhow::{bail, Context};

use crate::auth::{mask_email, password};
use crate::http::auth::normalise_email;
use crate::storage::audit::AuditEvent;
use crate::storage::users::UserRow;
use crate::storage::{is_unique_violation, Db};

/// Creates a platform superuser after checking the email and the password policy.
pub async fn create_superuser(db: &Db, email: &str, password: &str) -> anyhow::Result<UserRow> {
    let email = normalise_email(email).map_err(|e| anyhow::anyhow!("email {}", e.message))?;
    if let Some(reason) = password::policy_violation(password, &email) {
        bail!("the password {reason}");
    }
    let hash = password::hash_blocking(password.to_string()).await?;
    let user = db.insert_superuser(&email, &hash).await.map_err(|e| {
        if is_unique_violation(&e) {
            anyhow::anyhow!("an account with this email already exists")
        } else {
            anyhow::Error::new(e).context("creating the superuser")
        }
    })?;
    db.audit(AuditEvent {
        org_id: None,
        actor_id: None,
        action: "superuser.created",
        resource_type: "user",
        resource_id: Some(&user.id),
        metadata: serde_json::json!({"email": mask_email(&email), "via": "cli"}),
    })
    .await
    .context("recording the audit event")?;
    Ok(user)
}

/// The superuser's password: `RAPPORT_SUPERUSER_PASSWORD`, else one line of standard input.
pub fn read_superuser_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("RAPPORT_SUPERUSER_PASSWORD") {
        if !password.is_empty() {
            return Ok(password);
        }
    }
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password for the new superuser (input is shown): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given: set RAPPORT_SUPERUSER_PASSWORD or pipe it on standard input");
    }
    Ok(password)
}
