//! An account's own profile (display name) and preferences (a JSON document).

use super::users::{NewUser, UserRow, USER_COLUMNS};
use super::{now_ms, Db};

impl Db {
    /// Replaces the display name and the preferences document.
    pub async fn update_profile(
        &self,
        user_id: &str,
        display_name: Option<&str>,
        preferences_json: &str,
    ) -> sqlx::Result<Option<UserRow>> {
        sqlx::query_as(&format!(
            "UPDATE users SET display_name = $2, preferences = $3, updated_at = $4 \
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .bind(user_id)
        .bind(display_name)
        .bind(preferences_json)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Creates a platform superuser: no organisation, active and verified from the start.
    pub async fn insert_superuser(
        &self,
        email: &str,
        password_hash: &str,
    ) -> sqlx::Result<UserRow> {
        self.insert_user(
            &self.pool,
            NewUser {
                org_id: None,
                email,
                password_hash,
                role: "superuser",
                status: "active",
                display_name: None,
                verified: true,
            },
        )
        .await
    }
}
