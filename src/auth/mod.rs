//! Identity primitives: roles, the authenticated principal, passwords and tokens.
//! No HTTP or storage types here; the HTTP edge and storage call into this.

pub mod password;
pub mod secrets;
pub mod tokens;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A role within an organisation, or the platform superuser above all organisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Staff,
    Member,
    Superuser,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Staff => "staff",
            Self::Member => "member",
            Self::Superuser => "superuser",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "owner" => Some(Self::Owner),
            "staff" => Some(Self::Staff),
            "member" => Some(Self::Member),
            "superuser" => Some(Self::Superuser),
            _ => None,
        }
    }

    /// Owners and staff are the organisation's employees.
    pub fn is_employee(self) -> bool {
        matches!(self, Self::Owner | Self::Staff)
    }
}

/// Who is making a request, after their token was verified against storage.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    /// `None` only for the superuser.
    pub org_id: Option<String>,
    pub role: Role,
    /// The login session (refresh-token family) the access token belongs to.
    pub session_id: String,
    /// Whether the account's email is verified (pending accounts may do little).
    pub verified: bool,
}

impl Principal {
    pub fn is_superuser(&self) -> bool {
        self.role == Role::Superuser
    }

    /// Whether this principal may act inside `org_id` at all.
    pub fn belongs_to(&self, org_id: &str) -> bool {
        self.is_superuser() || self.org_id.as_deref() == Some(org_id)
    }
}

/// Masks an email for logs: `al***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let shown: String = local.chars().take(2).collect();
            format!("{shown}***@{domain}")
        }
        None => "***".to_string(),
    }
}
