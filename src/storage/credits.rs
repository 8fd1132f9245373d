//! The credit ledger: append-only transactions with the balance after each, and a balance row
//! that serialises spending so the balance never goes negative and nothing is charged twice.

use sqlx::FromRow;

use super::{new_id, now_ms, Db, PageCursor};

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

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "grant" => Self::Grant,
            "consumption" => Self::Consumption,
            "purchase" => Self::Purchase,
            "refund" => Self::Refund,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct TransactionRow {
    pub id: String,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub reference: String,
    /// The content a consumption paid for (through its generation job).
    pub content_id: Option<String>,
    pub created_at: i64,
}

/// The balance with what the ledger says about it.
#[derive(Debug, Clone)]
pub struct BalanceSummary {
    pub balance: i64,
    pub granted: i64,
    pub consumed: i64,
    pub last_transaction_at: Option<i64>,
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

impl Db {
    pub async fn credit_summary(&self, user_id: &str) -> sqlx::Result<BalanceSummary> {
        let (granted, consumed, last): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            // PostgreSQL sums BIGINT as NUMERIC: cast back so both backends decode an integer.
            "SELECT CAST(SUM(CASE WHEN kind = 'grant' THEN amount ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN kind = 'consumption' THEN -amount ELSE 0 END) AS BIGINT), MAX(created_at) \
             FROM credit_transactions WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(BalanceSummary {
            balance: self.credit_balance(user_id).await?,
            granted: granted.unwrap_or(0),
            consumed: consumed.unwrap_or(0),
            last_transaction_at: last,
        })
    }

    pub async fn credit_transactions(
        &self,
        user_id: &str,
        kind: Option<CreditKind>,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<TransactionRow>> {
        let (at, id) = cursor
            .cloned()
            .unwrap_or((i64::MAX, String::from("\u{10FFFF}")));
        let kind_clause = if kind.is_some() {
            "AND t.kind = $5"
        } else {
            ""
        };
        let sql = format!(
            "SELECT t.id, t.kind, t.amount, t.balance_after, t.reference, j.content_id, t.created_at \
             FROM credit_transactions t LEFT JOIN generation_jobs j ON t.kind = 'consumption' AND j.id = t.reference \
             WHERE t.user_id = $1 AND (t.created_at < $2 OR (t.created_at = $2 AND t.id < $3)) {kind_clause} \
             ORDER BY t.created_at DESC, t.id DESC LIMIT $4"
        );
        let mut query = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(at)
            .bind(id)
            .bind(i64::from(limit) + 1);
        if let Some(kind) = kind {
            query = query.bind(kind.as_str());
        }
        query.fetch_all(&self.pool).await
    }

    /// Takes back up to `amount` credits once per `(kind, reference)` (a refunded purchase):
    /// credits already spent stay spent, so the balance never goes negative. Returns what was
    /// taken back, or `None` when this reference was handled before.
    pub async fn take_back_credits(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: &str,
        kind: CreditKind,
        amount: i64,
        reference: &str,
    ) -> sqlx::Result<Option<i64>> {
        let now = now_ms();
        // Lock the balance row first (a no-op write), so the amount read below cannot go stale.
        sqlx::query("UPDATE credit_balances SET updated_at = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        let balance = self.credit_balance_in(tx, user_id).await?;
        let taken = amount.min(balance).max(0);
        let claimed = sqlx::query(
            "INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, reference, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, reference) DO NOTHING",
        )
        .bind(new_id())
        .bind(user_id)
        .bind(kind.as_str())
        .bind(-taken)
        .bind(balance - taken)
        .bind(reference)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query("UPDATE credit_balances SET balance = balance - $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(taken)
            .execute(&mut **tx)
            .await?;
        Ok(Some(taken))
    }
}
