//! Center replicas sharing one database, each advertising the gateway URL agents reach it at,
//! so every replica can give agents the whole list to fail over among.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    /// This replica is alive and reachable at `gateway_url`. Rows of replicas gone for a day
    /// are removed on the way.
    pub async fn replica_seen(
        &self,
        id: &str,
        gateway_url: &str,
        started_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, gateway_url, started_at, seen_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET gateway_url = $2, seen_at = $4",
        )
        .bind(id.to_string())
        .bind(gateway_url.to_string())
        .bind(started_at)
        .bind(now)
        .execute(self.pool())
        .await?;
        sqlx::query("DELETE FROM replicas WHERE seen_at < $1")
            .bind(now - 86_400)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Gateway URLs of replicas seen since `since`, each once, longest-running first.
    pub async fn live_gateways(&self, since: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT gateway_url, MIN(started_at) AS s FROM replicas WHERE seen_at >= $1 \
             GROUP BY gateway_url ORDER BY s, gateway_url",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("gateway_url")?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::testdb;

    #[tokio::test]
    async fn live_replicas_are_listed_once_and_stale_ones_not() {
        for (backend, db) in testdb::all().await {
            let s = &db.store;
            s.replica_seen("r1", "wss://a:1/agent/v1", 100, 1000)
                .await
                .unwrap();
            s.replica_seen("r2", "wss://b:1/agent/v1", 200, 1000)
                .await
                .unwrap();
            // A restarted replica: new id, same URL.
            s.replica_seen("r3", "wss://a:1/agent/v1", 900, 1000)
                .await
                .unwrap();
            s.replica_seen("old", "wss://c:1/agent/v1", 10, 500)
                .await
                .unwrap();
            assert_eq!(
                s.live_gateways(970).await.unwrap(),
                vec!["wss://a:1/agent/v1", "wss://b:1/agent/v1"],
                "{backend}"
            );
        }
    }
}
