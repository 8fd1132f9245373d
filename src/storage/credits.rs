//! The credit ledger: append-only transactions with the balance after each, and a balance row
//! that serialises spending so the balance never goes negative and nothing is charged twice.

use super::{new_id, now_ms, Db};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditKind {
    Grant,
    Consumption,
    Purchase,
    Refund,
}

impl CreditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Consumption => "consumption",
            Self::Purchase => "purchase",
            Self::Refund => "refund",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Spend {
    /// Charged now; the balance after.
    Charged(i64),
    /// This reference was already charged; nothing changed.
    AlreadyCharged(i64),
    Insufficient(i64),
}

impl Db {
    pub async fn credit_balance(&self, user_id: &str) -> sqlx::Result<i64> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT balance FROM credit_balances WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0).unwrap_or(0))
    }

    /// Adds credits (grant, purchase, refund) once per `(kind, reference)`.
    pub async fn add_credits(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: &str,
        kind: CreditKind,
        amount: i64,
        reference: &str,
    ) -> sqlx::Result<Option<i64>> {
        let now = now_ms();
        // The row for this reference is claimed first, so a replay adds nothing.
        let claimed = sqlx::query(
            "INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, reference, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (kind, reference) DO NOTHING",
        )
        .bind(new_id())
        .bind(user_id)
        .bind(kind.as_str())
        .bind(amount)
        .bind(reference)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        let (balance,): (i64,) = sqlx::query_as(
            "INSERT INTO credit_balances (user_id, balance, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET balance = credit_balances.balance + $2, updated_at = $3 \
             RETURNING balance",
        )
        .bind(user_id)
        .bind(amount)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE credit_transactions SET balance_after = $3 WHERE kind = $1 AND reference = $2",
        )
        .bind(kind.as_str())
        .bind(reference)
        .bind(balance)
        .execute(&mut **tx)
        .await?;
        Ok(Some(balance))
    }

    pub async fn grant_credits(
        &self,
        user_id: &str,
        amount: i64,
        reference: &str,
    ) -> sqlx::Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let balance = self
            .add_credits(&mut tx, user_id, CreditKind::Grant, amount, reference)
            .await?;
        tx.commit().await?;
        Ok(balance)
    }

    /// Spends `amount` for `reference` inside `tx`: at most once per reference, never below zero.
    pub async fn spend_credits(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: &str,
        amount: i64,
        reference: &str,
    ) -> sqlx::Result<Spend> {
        let now = now_ms();
        // Decrement first: the conditional write takes the row (or the database) write lock
        // before anything is read, so concurrent spenders queue instead of racing.
        let charged: Option<(i64,)> = sqlx::query_as(
            "UPDATE credit_balances SET balance = balance - $2, updated_at = $3 \
             WHERE user_id = $1 AND balance >= $2 RETURNING balance",
        )
        .bind(user_id)
        .bind(amount)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((balance,)) = charged else {
            let balance = self.credit_balance_in(tx, user_id).await?;
            return Ok(Spend::Insufficient(balance));
        };
        let recorded = sqlx::query(
            "INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, reference, created_at) \
             VALUES ($1, $2, 'consumption', $3, $4, $5, $6) ON CONFLICT (kind, reference) DO NOTHING",
        )
        .bind(new_id())
        .bind(user_id)
        .bind(-amount)
        .bind(balance)
        .bind(reference)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if recorded.rows_affected() == 0 {
            // Already charged for this reference: give the decrement back.
            let (restored,): (i64,) = sqlx::query_as(
                "UPDATE credit_balances SET balance = balance + $2 WHERE user_id = $1 RETURNING balance",
            )
            .bind(user_id)
            .bind(amount)
            .fetch_one(&mut **tx)
            .await?;
            return Ok(Spend::AlreadyCharged(restored));
        }
        Ok(Spend::Charged(balance))
    }

    async fn credit_balance_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: &str,
    ) -> sqlx::Result<i64> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT balance FROM credit_balances WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(row.map(|r| r.0).unwrap_or(0))
    }
}
