//! Employee invitations: one-time tokens of purpose `invitation` that carry the organisation, the
//! invited email and the role. Resending swaps the token and the expiry on the same row, so an
//! invitation keeps its id while its previous link stops working.

use super::one_time_tokens::{OneTimeToken, Purpose};
use super::orgs::OrgRow;
use super::query::{bind_all, Arg, Filter};
use super::users::{NewUser, UserRow};
use super::{is_unique_violation, new_id, now_ms, Db, PageCursor};

const COLUMNS: &str =
    "id, user_id, org_id, email, role, created_by, expires_at, used_at, cancelled_at, created_at";

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Expired,
    Cancelled,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn of(token: &OneTimeToken, now: i64) -> Self {
        if token.used_at.is_some() {
            Self::Accepted
        } else if token.cancelled_at.is_some() {
            Self::Cancelled
        } else if token.expires_at <= now {
            Self::Expired
        } else {
            Self::Pending
        }
    }

    /// The SQL condition selecting invitations in this status at `$now`.
    fn condition(self, now: &str) -> String {
        match self {
            Self::Accepted => "used_at IS NOT NULL".to_string(),
            Self::Cancelled => "used_at IS NULL AND cancelled_at IS NOT NULL".to_string(),
            Self::Expired => {
                format!("used_at IS NULL AND cancelled_at IS NULL AND expires_at <= {now}")
            }
            Self::Pending => {
                format!("used_at IS NULL AND cancelled_at IS NULL AND expires_at > {now}")
            }
        }
    }
}

/// What accepting an invitation led to.
#[derive(Debug)]
pub enum Acceptance {
    Accepted {
        user: Box<UserRow>,
        invitation: Box<OneTimeToken>,
    },
    /// Unknown, used, cancelled or expired.
    InvalidToken,
    /// An account with the invited email was created meanwhile.
    EmailTaken,
}

pub struct NewInvitation<'a> {
    pub org_id: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub created_by: Option<&'a str>,
    pub token_digest: &'a str,
    pub ttl_ms: i64,
}

impl Db {
    pub async fn create_invitation(&self, inv: NewInvitation<'_>) -> sqlx::Result<OneTimeToken> {
        let now = now_ms();
        sqlx::query_as(&format!(
            "INSERT INTO one_time_tokens (id, purpose, token_hash, org_id, email, role, created_by, \
             expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(Purpose::Invitation.as_str())
        .bind(inv.token_digest)
        .bind(inv.org_id)
        .bind(inv.email)
        .bind(inv.role)
        .bind(inv.created_by)
        .bind(now + inv.ttl_ms)
        .bind(now)
        .fetch_one(&self.pool)
        .await
    }

    /// Whether `email` already has a pending invitation to `org_id`.
    pub async fn has_pending_invitation(&self, org_id: &str, email: &str) -> sqlx::Result<bool> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM one_time_tokens WHERE purpose = $1 AND org_id = $2 AND email = $3 \
             AND used_at IS NULL AND cancelled_at IS NULL AND expires_at > $4 LIMIT 1",
        )
        .bind(Purpose::Invitation.as_str())
        .bind(org_id)
        .bind(email)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn list_invitations(
        &self,
        org_id: &str,
        status: Option<InvitationStatus>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<OneTimeToken>> {
        let mut filter = Filter::new();
        filter.eq("purpose", Arg::Text(Purpose::Invitation.as_str().into()));
        filter.eq("org_id", Arg::Text(org_id.to_string()));
        if let Some(status) = status {
            let now = filter.arg(Arg::Int(now_ms()));
            filter.clause(status.condition(&now));
        }
        filter.before(cursor);
        let limit = filter.arg(Arg::Int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {COLUMNS} FROM one_time_tokens{} ORDER BY created_at DESC, id DESC LIMIT {limit}",
            filter.sql()
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    pub async fn invitation(&self, org_id: &str, id: &str) -> sqlx::Result<Option<OneTimeToken>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM one_time_tokens WHERE id = $1 AND org_id = $2 AND purpose = $3"
        ))
        .bind(id)
        .bind(org_id)
        .bind(Purpose::Invitation.as_str())
        .fetch_optional(&self.pool)
        .await
    }

    /// Cancels an invitation not yet accepted or cancelled; the updated row, or `None`.
    pub async fn cancel_invitation(
        &self,
        org_id: &str,
        id: &str,
    ) -> sqlx::Result<Option<OneTimeToken>> {
        sqlx::query_as(&format!(
            "UPDATE one_time_tokens SET cancelled_at = $4 WHERE id = $1 AND org_id = $2 \
             AND purpose = $3 AND used_at IS NULL AND cancelled_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(org_id)
        .bind(Purpose::Invitation.as_str())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Gives a pending or expired invitation a new token and a fresh expiry; the old token stops
    /// working because its digest is replaced.
    pub async fn reissue_invitation(
        &self,
        org_id: &str,
        id: &str,
        token_digest: &str,
        ttl_ms: i64,
    ) -> sqlx::Result<Option<OneTimeToken>> {
        sqlx::query_as(&format!(
            "UPDATE one_time_tokens SET token_hash = $4, expires_at = $5 WHERE id = $1 \
             AND org_id = $2 AND purpose = $3 AND used_at IS NULL AND cancelled_at IS NULL \
             RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(org_id)
        .bind(Purpose::Invitation.as_str())
        .bind(token_digest)
        .bind(now_ms() + ttl_ms)
        .fetch_optional(&self.pool)
        .await
    }

    /// The organisation of a usable invitation token, for the public invitation page.
    pub async fn invitation_by_token(
        &self,
        digest: &str,
    ) -> sqlx::Result<Option<(OneTimeToken, OrgRow)>> {
        let Some(token) = self
            .peek_one_time_token(Purpose::Invitation, digest)
            .await?
        else {
            return Ok(None);
        };
        let Some(org_id) = token.org_id.as_deref() else {
            return Ok(None);
        };
        Ok(self.org(org_id).await?.map(|org| (token, org)))
    }

    /// Spends the token and creates the verified account in one transaction, so a failure leaves
    /// the invitation usable. An owner's acceptance activates a still-pending organisation.
    pub async fn accept_invitation(
        &self,
        digest: &str,
        password_hash: &str,
        display_name: Option<&str>,
    ) -> sqlx::Result<Acceptance> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let spent: Option<OneTimeToken> = sqlx::query_as(&format!(
            "UPDATE one_time_tokens SET used_at = $3 WHERE purpose = $1 AND token_hash = $2 \
             AND used_at IS NULL AND cancelled_at IS NULL AND expires_at > $3 RETURNING {COLUMNS}"
        ))
        .bind(Purpose::Invitation.as_str())
        .bind(digest)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(invitation) = spent else {
            return Ok(Acceptance::InvalidToken);
        };
        let (Some(org_id), Some(email), Some(role)) = (
            invitation.org_id.clone(),
            invitation.email.clone(),
            invitation.role.clone(),
        ) else {
            return Ok(Acceptance::InvalidToken);
        };
        let inserted = self
            .insert_user(
                &mut *tx,
                NewUser {
                    org_id: Some(&org_id),
                    email: &email,
                    password_hash,
                    role: &role,
                    status: "active",
                    display_name,
                    verified: true,
                },
            )
            .await;
        let user = match inserted {
            Ok(user) => user,
            Err(e) if is_unique_violation(&e) => return Ok(Acceptance::EmailTaken),
            Err(e) => return Err(e),
        };
        if role == "owner" {
            sqlx::query(
                "UPDATE orgs SET status = 'active', updated_at = $2 WHERE id = $1 AND status = 'pending'",
            )
            .bind(&org_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Acceptance::Accepted {
            user: Box::new(user),
            invitation: Box::new(invitation),
        })
    }
}
