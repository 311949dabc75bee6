;; Rendezvous invariants and properties for x402-nexus-escrow (`npm run fuzz`).
;;
;; Rendezvous appends this file (and its `context` map) to the contract and
;; deploys the result in place of it, so everything here sees the contract's
;; private state: `payments`, `total-locked`, `token-locked`, `tokens`,
;; `paused`, `owner`.
;;
;; Tokens: two are allowed from the start, test-sbtc (honest) and
;; test-bad-token, whose transfer the fuzzer can switch to lying (`ok`
;; without moving, or moving half). The per-token invariants must hold for
;; both: the escrow's own balance checks, not the allowlist, keep its books.
;;
;; - invariant mode: random sequences of the public functions (including the
;;   fuzz-* wrappers below), from random devnet accounts, with random burn
;;   blocks mined in between; after each sequence one invariant-* is checked.
;; - test mode: random calls of the test-* properties; each one predicts the
;;   exact outcome of one escrow call from the current state and checks it.

;; ---------------------------------------------------------------------------
;; Payment ids. Random 32-byte ids never collide, so without steering claims,
;; refunds and replays would only ever see ERR-NOT-FOUND. The wrappers and
;; properties create payments under sequential ids (sha256 of a counter) and
;; settle or replay one of the 8 most recent; invariants look at the 16 most
;; recent.

(define-data-var ghost-next-seed uint u0)

(define-constant WINDOW (list u1 u2 u3 u4 u5 u6 u7 u8 u9 u10 u11 u12 u13 u14 u15 u16))

(define-read-only (seed-id (seed uint))
  (sha256 seed)
)

;; A fresh id; consumes the counter.
(define-private (fresh-id)
  (let ((seed (var-get ghost-next-seed)))
    (var-set ghost-next-seed (+ seed u1))
    (seed-id seed)
  )
)

;; One of the 8 most recently issued ids, picked by `pick`.
(define-read-only (recent-id (pick uint))
  (let (
      (issued (var-get ghost-next-seed))
      (span (if (< issued u8)
        issued
        u8
      ))
    )
    ;; Before any id is issued: 0x00, which fresh-id never produces.
    (if (is-eq span u0)
      0x00
      (seed-id (- issued (+ u1 (mod pick span))))
    )
  )
)

;; The id issued `back` ids ago (1 = latest), if any.
(define-read-only (window-id (back uint))
  (if (<= back (var-get ghost-next-seed))
    (some (seed-id (- (var-get ghost-next-seed) back)))
    none
  )
)

;; ---------------------------------------------------------------------------
;; Ghost state, written only after a successful settlement through a fuzz-*
;; wrapper. It remembers what the contract itself is not required to.

;; Successful claims / refunds per payment id.
(define-map ghost-claims (buff 32) uint)
(define-map ghost-refunds (buff 32) uint)
;; The payment record as it was right after its first settlement.
(define-map ghost-settled
  (buff 32)
  {
    sender: principal,
    recipient: principal,
    amount: uint,
    memo: (buff 34),
    created-at: uint,
    expires-at: uint,
    status: (string-ascii 8),
    token: (optional principal),
  }
)

(map-set tokens .test-sbtc {
  asset-name: "test-sbtc",
  allowed: true,
})
(map-set tokens .test-bad-token {
  asset-name: "bad-token",
  allowed: true,
})

(define-private (record-settlement (id (buff 32)))
  (match (map-get? payments id)
    payment (map-insert ghost-settled id payment)
    false
  )
)

(define-private (bump (counter uint))
  (+ counter u1)
)

;; ---------------------------------------------------------------------------
;; Fuzz wrappers (public, so invariant mode calls them like any other public
;; function; tx-sender is the random caller).

(define-public (fuzz-create
    (recipient principal)
    (amount uint)
    (memo (buff 34))
  )
  (create-payment (fresh-id) recipient amount memo)
)

;; Re-use a recent id: must always fail with ERR-ID-USED.
(define-public (fuzz-replay
    (pick uint)
    (recipient principal)
    (amount uint)
    (memo (buff 34))
  )
  (create-payment (recent-id pick) recipient amount memo)
)

;; The most recent payment addressed to the caller, if any.
(define-private (find-mine
    (back uint)
    (found (optional (buff 32)))
  )
  (match found
    id found
    (match (window-id back)
      id (match (map-get? payments id)
        payment (if (is-eq (get recipient payment) tx-sender)
          (some id)
          none
        )
        none
      )
      none
    )
  )
)

;; The most recent pending payment addressed to the caller, if any.
(define-private (find-claimable
    (back uint)
    (found (optional (buff 32)))
  )
  (match found
    id found
    (match (window-id back)
      id (match (map-get? payments id)
        payment (if (and
            (is-eq (get recipient payment) tx-sender)
            (is-eq (get status payment) STATUS-PENDING)
          )
          (some id)
          none
        )
        none
      )
      none
    )
  )
)

;; A random caller is rarely the recipient, so one call in three targets a
;; pending payment the caller can claim, one in three the caller's latest
;; payment whatever its status (double claims, claim after refund), and one
;; in three any recent id.
(define-public (fuzz-claim (pick uint))
  (let ((id (if (is-eq (mod pick u3) u0)
      (default-to (recent-id pick) (fold find-claimable WINDOW none))
      (if (is-eq (mod pick u3) u1)
        (default-to (recent-id pick) (fold find-mine WINDOW none))
        (recent-id pick)
      )
    )))
    (try! (claim-payment id))
    (map-set ghost-claims id (bump (default-to u0 (map-get? ghost-claims id))))
    (record-settlement id)
    (ok true)
  )
)

(define-public (fuzz-refund (pick uint))
  (let ((id (recent-id pick)))
    (try! (refund-expired id))
    (map-set ghost-refunds id (bump (default-to u0 (map-get? ghost-refunds id))))
    (record-settlement id)
    (ok true)
  )
)

;; Token payments, in test-sbtc (even `which`) or test-bad-token (odd). The
;; caller is minted what it pays first, so creates mostly get that far.
(define-public (fuzz-create-ft
    (which uint)
    (recipient principal)
    (amount uint)
    (memo (buff 34))
  )
  (if (is-eq (mod which u2) u0)
    (begin
      (try! (contract-call? .test-sbtc mint (+ amount u1) tx-sender))
      (create-payment-ft (fresh-id) recipient amount memo .test-sbtc)
    )
    (begin
      (try! (contract-call? .test-bad-token mint (+ amount u1) tx-sender))
      (create-payment-ft (fresh-id) recipient amount memo .test-bad-token)
    )
  )
)

(define-public (fuzz-claim-ft
    (pick uint)
    (which uint)
  )
  (let ((id (if (is-eq (mod pick u2) u0)
      (default-to (recent-id pick) (fold find-claimable WINDOW none))
      (recent-id pick)
    )))
    (try! (if (is-eq (mod which u2) u0)
      (claim-payment-ft id .test-sbtc)
      (claim-payment-ft id .test-bad-token)
    ))
    (map-set ghost-claims id (bump (default-to u0 (map-get? ghost-claims id))))
    (record-settlement id)
    (ok true)
  )
)

(define-public (fuzz-refund-ft
    (pick uint)
    (which uint)
  )
  (let ((id (recent-id pick)))
    (try! (if (is-eq (mod which u2) u0)
      (refund-expired-ft id .test-sbtc)
      (refund-expired-ft id .test-bad-token)
    ))
    (map-set ghost-refunds id (bump (default-to u0 (map-get? ghost-refunds id))))
    (record-settlement id)
    (ok true)
  )
)

;; Switch test-bad-token between honest (0), ok-without-moving (1) and
;; moving half (2).
(define-public (fuzz-bad-token-mode (mode uint))
  (contract-call? .test-bad-token set-mode (mod mode u3))
)

;; ---------------------------------------------------------------------------
;; Invariants

;; The contract holds exactly the pending funds. (On a live chain anyone can
;; send STX to the contract address, making balance > total-locked; such a
;; donation is stuck forever. Nobody donates during fuzzing.)
(define-read-only (invariant-total-locked-matches-balance)
  (is-eq (stx-get-balance current-contract) (var-get total-locked))
)

(define-private (settled-at-most-once
    (back uint)
    (ok-so-far bool)
  )
  (and
    ok-so-far
    (match (window-id back)
      id (<=
        (+
          (default-to u0 (map-get? ghost-claims id))
          (default-to u0 (map-get? ghost-refunds id))
        )
        u1
      )
      true
    )
  )
)

;; Per token: the contract holds exactly the pending funds of that token,
;; whatever the token's transfer claimed to do.
(define-read-only (invariant-token-locked-matches-balance)
  (and
    (is-eq (get-token-locked .test-sbtc)
      (unwrap-panic (contract-call? .test-sbtc get-balance current-contract))
    )
    (is-eq (get-token-locked .test-bad-token)
      (unwrap-panic (contract-call? .test-bad-token get-balance current-contract))
    )
  )
)

;; No payment is paid out twice: never claimed and refunded, never claimed
;; or refunded twice.
(define-read-only (invariant-no-payment-claimed-and-refunded)
  (fold settled-at-most-once WINDOW true)
)

(define-private (settled-unchanged
    (back uint)
    (ok-so-far bool)
  )
  (and
    ok-so-far
    (match (window-id back)
      id (match (map-get? ghost-settled id)
        snapshot (is-eq (map-get? payments id) (some snapshot))
        true
      )
      true
    )
  )
)

;; Once claimed or refunded, a payment record never changes again (no
;; replay of its id, no status flip).
(define-read-only (invariant-settled-payment-never-changes)
  (fold settled-unchanged WINDOW true)
)

(define-private (well-formed
    (back uint)
    (ok-so-far bool)
  )
  (and
    ok-so-far
    (match (map-get? payments (default-to 0x (window-id back)))
      payment (and
        (> (get amount payment) u0)
        (not (is-eq (get sender payment) (get recipient payment)))
        (is-eq (get expires-at payment) (+ (get created-at payment) PAYMENT-TIMEOUT))
        (or
          (is-eq (get status payment) STATUS-PENDING)
          (is-eq (get status payment) STATUS-CLAIMED)
          (is-eq (get status payment) STATUS-REFUNDED)
        )
      )
      true
    )
  )
)

;; Every stored payment satisfies the creation rules and has a known status.
(define-read-only (invariant-payments-well-formed)
  (fold well-formed WINDOW true)
)

(define-private (pending-amount
    (back uint)
    (acc {
      token: (optional principal),
      sum: uint,
    })
  )
  (match (map-get? payments (default-to 0x (window-id back)))
    payment (if (and
        (is-eq (get status payment) STATUS-PENDING)
        (is-eq (get token payment) (get token acc))
      )
      (merge acc { sum: (+ (get sum acc) (get amount payment)) })
      acc
    )
    acc
  )
)

(define-private (pending-sum (token (optional principal)))
  (get sum
    (fold pending-amount WINDOW {
      token: token,
      sum: u0,
    })
  )
)

;; What is locked covers at least the pending payments among the recent ids
;; (other ids come from direct create calls with random ids), in STX and in
;; each token.
(define-read-only (invariant-total-locked-covers-pending)
  (and
    (>= (var-get total-locked) (pending-sum none))
    (>= (get-token-locked .test-sbtc) (pending-sum (some .test-sbtc)))
    (>= (get-token-locked .test-bad-token) (pending-sum (some .test-bad-token)))
  )
)

;; ---------------------------------------------------------------------------
;; Properties. Each predicts the exact result from the current state, makes
;; the call, and checks result, record, total-locked and STX balances.
;; Failure codes u9xx identify the broken expectation.

(define-public (test-create-payment
    (pick uint)
    (recipient principal)
    (amount uint)
    (memo (buff 34))
  )
  (let (
      ;; One call in four replays a recent id (expects ERR-ID-USED).
      (id (if (and (is-eq (mod pick u4) u0) (> (var-get ghost-next-seed) u0))
        (recent-id pick)
        (fresh-id)
      ))
      (caller tx-sender)
      (locked-before (var-get total-locked))
      (escrow-before (stx-get-balance current-contract))
      (caller-before (stx-get-balance caller))
      (expected-error (if (var-get paused)
        (some u101)
        (if (is-eq amount u0)
          (some u102)
          (if (is-eq caller recipient)
            (some u103)
            (if (is-some (map-get? payments id))
              (some u104)
              (if (> amount caller-before)
                (some u110)
                none
              )
            )
          )
        )
      ))
      (result (create-payment id recipient amount memo))
    )
    (match expected-error
      code (begin
        (asserts! (is-eq result (err code)) (err u900))
        (asserts! (is-eq (var-get total-locked) locked-before) (err u901))
        (asserts! (is-eq (stx-get-balance caller) caller-before) (err u902))
        (ok true)
      )
      (begin
        (asserts! (is-eq result (ok true)) (err u903))
        (asserts!
          (is-eq (map-get? payments id)
            (some {
              sender: caller,
              recipient: recipient,
              amount: amount,
              memo: memo,
              created-at: stacks-block-height,
              expires-at: (+ stacks-block-height PAYMENT-TIMEOUT),
              status: STATUS-PENDING,
              token: none,
            })
          )
          (err u904)
        )
        (asserts! (is-eq (var-get total-locked) (+ locked-before amount))
          (err u905)
        )
        (asserts!
          (is-eq (stx-get-balance current-contract) (+ escrow-before amount))
          (err u906)
        )
        (asserts! (is-eq (stx-get-balance caller) (- caller-before amount))
          (err u907)
        )
        (ok true)
      )
    )
  )
)

(define-public (test-claim-payment (pick uint))
  (let (
      (id (recent-id pick))
      (caller tx-sender)
      (before (map-get? payments id))
      (locked-before (var-get total-locked))
      (caller-before (stx-get-balance caller))
      (expected-error (match before
        payment (if (var-get paused)
          u101
          (if (not (is-eq caller (get recipient payment)))
            u106
            (if (not (is-eq (get status payment) STATUS-PENDING))
              u107
              (if (>= stacks-block-height (get expires-at payment))
                u108
                (if (is-some (get token payment))
                  u115
                  u0
                )
              )
            )
          )
        )
        u105
      ))
      (result (claim-payment id))
    )
    (if (> expected-error u0)
      (begin
        (asserts! (is-eq result (err expected-error)) (err u910))
        (asserts! (is-eq (map-get? payments id) before) (err u911))
        (asserts! (is-eq (var-get total-locked) locked-before) (err u912))
        (ok true)
      )
      (let ((payment (unwrap! before (err u913))))
        (asserts! (is-eq result (ok true)) (err u914))
        (asserts!
          (is-eq (map-get? payments id)
            (some (merge payment { status: STATUS-CLAIMED }))
          )
          (err u915)
        )
        (asserts!
          (is-eq (var-get total-locked) (- locked-before (get amount payment)))
          (err u916)
        )
        (asserts!
          (is-eq (stx-get-balance caller) (+ caller-before (get amount payment)))
          (err u917)
        )
        (ok true)
      )
    )
  )
)

(define-public (test-refund-expired (pick uint))
  (let (
      (id (recent-id pick))
      (before (map-get? payments id))
      (locked-before (var-get total-locked))
      (payer-before (match before
        payment (stx-get-balance (get sender payment))
        u0
      ))
      (expected-error (match before
        payment (if (not (is-eq (get status payment) STATUS-PENDING))
          u107
          (if (< stacks-block-height (get expires-at payment))
            u109
            (if (is-some (get token payment))
              u115
              u0
            )
          )
        )
        u105
      ))
      (result (refund-expired id))
    )
    (if (> expected-error u0)
      (begin
        (asserts! (is-eq result (err expected-error)) (err u920))
        (asserts! (is-eq (map-get? payments id) before) (err u921))
        (asserts! (is-eq (var-get total-locked) locked-before) (err u922))
        (ok true)
      )
      (let ((payment (unwrap! before (err u923))))
        (asserts! (is-eq result (ok true)) (err u924))
        (asserts!
          (is-eq (map-get? payments id)
            (some (merge payment { status: STATUS-REFUNDED }))
          )
          (err u925)
        )
        (asserts!
          (is-eq (var-get total-locked) (- locked-before (get amount payment)))
          (err u926)
        )
        ;; The funds go to the payer, whoever calls.
        (asserts!
          (is-eq (stx-get-balance (get sender payment))
            (+ payer-before (get amount payment))
          )
          (err u927)
        )
        (ok true)
      )
    )
  )
)

;; Token payments in test-sbtc. Two calls in three first mint the caller
;; the amount, so both the success path and ERR-TRANSFER-FAILED are reached.
(define-private (sbtc-balance (who principal))
  (unwrap-panic (contract-call? .test-sbtc get-balance who))
)

(define-public (test-create-payment-ft
    (pick uint)
    (recipient principal)
    (amount uint)
    (memo (buff 34))
  )
  (let (
      (funded (if (> (mod pick u3) u0)
        (is-ok (contract-call? .test-sbtc mint amount tx-sender))
        false
      ))
      (id (if (and (is-eq (mod pick u4) u0) (> (var-get ghost-next-seed) u0))
        (recent-id pick)
        (fresh-id)
      ))
      (caller tx-sender)
      (locked-before (get-token-locked .test-sbtc))
      (stx-locked-before (var-get total-locked))
      (escrow-before (sbtc-balance current-contract))
      (caller-before (sbtc-balance caller))
      (expected-error (if (var-get paused)
        (some u101)
        (if (is-eq amount u0)
          (some u102)
          (if (is-eq caller recipient)
            (some u103)
            (if (is-some (map-get? payments id))
              (some u104)
              (if (not (is-token-allowed .test-sbtc))
                (some u114)
                (if (> amount caller-before)
                  (some u110)
                  none
                )
              )
            )
          )
        )
      ))
      (result (create-payment-ft id recipient amount memo .test-sbtc))
    )
    (asserts! (or funded (is-eq (mod pick u3) u0) (is-eq amount u0)) (err u940))
    (match expected-error
      code (begin
        (asserts! (is-eq result (err code)) (err u941))
        (asserts! (is-eq (get-token-locked .test-sbtc) locked-before) (err u942))
        (asserts! (is-eq (sbtc-balance caller) caller-before) (err u943))
        (ok true)
      )
      (begin
        (asserts! (is-eq result (ok true)) (err u944))
        (asserts!
          (is-eq (map-get? payments id)
            (some {
              sender: caller,
              recipient: recipient,
              amount: amount,
              memo: memo,
              created-at: stacks-block-height,
              expires-at: (+ stacks-block-height PAYMENT-TIMEOUT),
              status: STATUS-PENDING,
              token: (some .test-sbtc),
            })
          )
          (err u945)
        )
        (asserts! (is-eq (get-token-locked .test-sbtc) (+ locked-before amount))
          (err u946)
        )
        (asserts! (is-eq (sbtc-balance current-contract) (+ escrow-before amount))
          (err u947)
        )
        (asserts! (is-eq (sbtc-balance caller) (- caller-before amount)) (err u948))
        ;; STX books untouched.
        (asserts! (is-eq (var-get total-locked) stx-locked-before) (err u949))
        (ok true)
      )
    )
  )
)

;; Shared by the token claim and refund properties: the exact error a call
;; on `before` must give (u0: none), given what each one checks.
(define-private (ft-settle-error
    (before (optional {
      sender: principal,
      recipient: principal,
      amount: uint,
      memo: (buff 34),
      created-at: uint,
      expires-at: uint,
      status: (string-ascii 8),
      token: (optional principal),
    }))
    (claim bool)
    (caller principal)
  )
  (match before
    payment (if (and claim (var-get paused))
      u101
      (if (and claim (not (is-eq caller (get recipient payment))))
        u106
        (if (not (is-eq (get status payment) STATUS-PENDING))
          u107
          (if (if claim
              (>= stacks-block-height (get expires-at payment))
              (< stacks-block-height (get expires-at payment))
            )
            (if claim
              u108
              u109
            )
            (if (is-eq (get token payment) (some .test-sbtc))
              u0
              u115
            )
          )
        )
      )
    )
    u105
  )
)

(define-public (test-claim-payment-ft (pick uint))
  (let (
      (id (recent-id pick))
      (caller tx-sender)
      (before (map-get? payments id))
      (locked-before (get-token-locked .test-sbtc))
      (caller-before (sbtc-balance caller))
      (expected-error (ft-settle-error before true caller))
      (result (claim-payment-ft id .test-sbtc))
    )
    (if (> expected-error u0)
      (begin
        (asserts! (is-eq result (err expected-error)) (err u950))
        (asserts! (is-eq (map-get? payments id) before) (err u951))
        (asserts! (is-eq (get-token-locked .test-sbtc) locked-before) (err u952))
        (ok true)
      )
      (let ((payment (unwrap! before (err u953))))
        (asserts! (is-eq result (ok true)) (err u954))
        (asserts!
          (is-eq (map-get? payments id)
            (some (merge payment { status: STATUS-CLAIMED }))
          )
          (err u955)
        )
        (asserts!
          (is-eq (get-token-locked .test-sbtc) (- locked-before (get amount payment)))
          (err u956)
        )
        (asserts!
          (is-eq (sbtc-balance caller) (+ caller-before (get amount payment)))
          (err u957)
        )
        (ok true)
      )
    )
  )
)

(define-public (test-refund-expired-ft (pick uint))
  (let (
      (id (recent-id pick))
      (before (map-get? payments id))
      (locked-before (get-token-locked .test-sbtc))
      (payer-before (match before
        payment (sbtc-balance (get sender payment))
        u0
      ))
      (expected-error (ft-settle-error before false tx-sender))
      (result (refund-expired-ft id .test-sbtc))
    )
    (if (> expected-error u0)
      (begin
        (asserts! (is-eq result (err expected-error)) (err u960))
        (asserts! (is-eq (map-get? payments id) before) (err u961))
        (asserts! (is-eq (get-token-locked .test-sbtc) locked-before) (err u962))
        (ok true)
      )
      (let ((payment (unwrap! before (err u963))))
        (asserts! (is-eq result (ok true)) (err u964))
        (asserts!
          (is-eq (map-get? payments id)
            (some (merge payment { status: STATUS-REFUNDED }))
          )
          (err u965)
        )
        (asserts!
          (is-eq (get-token-locked .test-sbtc) (- locked-before (get amount payment)))
          (err u966)
        )
        ;; The tokens go back to the payer, whoever calls.
        (asserts!
          (is-eq (sbtc-balance (get sender payment))
            (+ payer-before (get amount payment))
          )
          (err u967)
        )
        (ok true)
      )
    )
  )
)

;; Toggle the pause flag so the other properties also run while paused.
(define-public (test-toggle-pause)
  (let (
      (was-paused (var-get paused))
      (is-owner (is-eq contract-caller (var-get owner)))
      (result (if was-paused
        (unpause)
        (pause)
      ))
    )
    (if is-owner
      (begin
        (asserts! (is-eq result (ok true)) (err u930))
        (asserts! (is-eq (var-get paused) (not was-paused)) (err u931))
        (ok true)
      )
      (begin
        (asserts! (is-eq result (err u100)) (err u932))
        (asserts! (is-eq (var-get paused) was-paused) (err u933))
        (ok true)
      )
    )
  )
)
