//! An organisation's employees: its owners and staff (members are end users, not employees).

use super::query::{bind_all, Arg, Filter};
use super::users::{UserRow, USER_COLUMNS};
use super::{now_ms, Db, PageCursor};

/// The outcome of a change that must leave the organisation at least one owner.
#[derive(Debug)]
pub enum OwnerGuarded<T> {
    Done(T),
    NotFound,
    /// The change would leave the organisation without an owner.
    LastOwner,
}

impl Db {
    pub async fn list_employees(
        &self,
        org_id: &str,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<UserRow>> {
        let mut filter = Filter::new();
        filter.eq("org_id", Arg::Text(org_id.to_string()));
        filter.clause("role IN ('owner', 'staff')");
        filter.before(cursor);
        let limit = filter.arg(Arg::Int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users{} ORDER BY created_at DESC, id DESC LIMIT {limit}",
            filter.sql()
        );
        bind_all(sqlx::query_as(&sql), filter.args())
            .fetch_all(&self.pool)
            .await
    }

    pub async fn employee(&self, org_id: &str, id: &str) -> sqlx::Result<Option<UserRow>> {
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND org_id = $2 \
             AND role IN ('owner', 'staff')"
        ))
        .bind(id)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Changes an employee's role (`owner` or `staff`); returns the role it had.
    pub async fn change_employee_role(
        &self,
        org_id: &str,
        id: &str,
        role: &str,
    ) -> sqlx::Result<OwnerGuarded<String>> {
        let mut tx = self.pool.begin().await?;
        lock_org(&mut tx, org_id).await?;
        let Some(current) = employee_role(&mut tx, org_id, id).await? else {
            return Ok(OwnerGuarded::NotFound);
        };
        if current == "owner" && role != "owner" && owner_count(&mut tx, org_id).await? <= 1 {
            return Ok(OwnerGuarded::LastOwner);
        }
        sqlx::query("UPDATE users SET role = $3, updated_at = $4 WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .bind(role)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(OwnerGuarded::Done(current))
    }

    /// Deletes an employee's account (and with it their sessions); returns the removed account.
    pub async fn remove_employee(
        &self,
        org_id: &str,
        id: &str,
    ) -> sqlx::Result<OwnerGuarded<UserRow>> {
        let mut tx = self.pool.begin().await?;
        lock_org(&mut tx, org_id).await?;
        let user: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND org_id = $2 \
             AND role IN ('owner', 'staff')"
        ))
        .bind(id)
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            return Ok(OwnerGuarded::NotFound);
        };
        if user.role == "owner" && owner_count(&mut tx, org_id).await? <= 1 {
            return Ok(OwnerGuarded::LastOwner);
        }
        sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(OwnerGuarded::Done(user))
    }
}

/// Serialises owner changes within one organisation: the row lock (PostgreSQL) or the write lock
/// (SQLite) is held until commit, so two concurrent demotions cannot both see a second owner.
async fn lock_org(tx: &mut sqlx::Transaction<'_, sqlx::Any>, org_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE orgs SET updated_at = updated_at WHERE id = $1")
        .bind(org_id)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

async fn employee_role(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT role FROM users WHERE id = $1 AND org_id = $2 AND role IN ('owner', 'staff')",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.0))
}

async fn owner_count(tx: &mut sqlx::Transaction<'_, sqlx::Any>, org_id: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner'")
            .bind(org_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(n)
}
