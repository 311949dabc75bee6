;; x402-nexus-escrow
;;
;; Escrow for x402 payments, in STX or an allowed SIP-010 token. A payer
;; locks an amount for a recipient under a caller-chosen 32-byte payment id;
;; the recipient claims it before the payment expires, or anyone refunds it
;; to the payer once it has expired.
;;
;; Tokens live in this same contract, not a sibling: payment ids must be
;; unique across STX and tokens, and only one contract can see one map (a
;; sibling could read ours, but ours could not read the sibling's without a
;; circular dependency). The `-ft` functions mirror the STX ones and take the
;; token as a <sip-010-trait>; the payment records which token it holds.
;;
;; Invariants (checked by contracts/x402-nexus-escrow.tests.clar):
;; - total-locked == sum of the amounts of pending STX payments
;;               == the STX balance of this contract;
;; - for each token, token-locked == sum of its pending payments' amounts
;;               == the contract's balance of it (as its get-balance says);
;; - a payment id is used at most once, forever (payments are never deleted);
;; - a payment moves pending -> claimed or pending -> refunded, and a settled
;;   payment never changes again;
;; - nobody, including the owner, can move escrowed funds anywhere except to
;;   the payment's recipient (claim) or its sender (refund).
;;
;; Every state change prints exactly one tuple; contracts/EVENTS.md documents
;; their shapes, which are the indexer's input contract.

;; ---------------------------------------------------------------------------
;; Constants

;; Blocks a payment stays claimable: ~16 min at Nakamoto block times.
(define-constant PAYMENT-TIMEOUT u100)

(define-constant STATUS-PENDING "pending")
(define-constant STATUS-CLAIMED "claimed")
(define-constant STATUS-REFUNDED "refunded")

(define-constant ERR-NOT-OWNER (err u100))
(define-constant ERR-PAUSED (err u101))
(define-constant ERR-ZERO-AMOUNT (err u102))
(define-constant ERR-SELF-PAYMENT (err u103))
(define-constant ERR-ID-USED (err u104))
(define-constant ERR-NOT-FOUND (err u105))
(define-constant ERR-NOT-RECIPIENT (err u106))
(define-constant ERR-NOT-PENDING (err u107))
(define-constant ERR-EXPIRED (err u108))
(define-constant ERR-NOT-EXPIRED (err u109))
(define-constant ERR-TRANSFER-FAILED (err u110))
(define-constant ERR-NOT-PROPOSED-OWNER (err u111))
(define-constant ERR-ALREADY-PAUSED (err u112))
(define-constant ERR-NOT-PAUSED (err u113))
(define-constant ERR-TOKEN-NOT-ALLOWED (err u114))
(define-constant ERR-WRONG-TOKEN (err u115))

(use-trait sip-010-trait .sip-010-trait.sip-010-trait)

;; ---------------------------------------------------------------------------
;; State

(define-data-var owner principal tx-sender)
;; Set by `propose-owner`, consumed by `accept-owner`.
(define-data-var proposed-owner (optional principal) none)
;; Stops create-payment and claim-payment; never refund-expired.
(define-data-var paused bool false)
;; Sum of the amounts of all pending STX payments.
(define-data-var total-locked uint u0)
;; Per token: the sum of the amounts of its pending payments.
(define-map token-locked principal uint)
;; Tokens the owner has ever allowed. `asset-name` is the token's
;; `define-fungible-token` name, which the payout's `with-ft` allowance
;; needs; it outlives `allowed`, so that disallowing a token never blocks the
;; claims and refunds of payments already made with it.
(define-map tokens
  principal
  {
    asset-name: (string-ascii 128),
    allowed: bool,
  }
)

;; Entries are never deleted, which is what makes payment ids single-use.
(define-map payments
  (buff 32)
  {
    sender: principal,
    recipient: principal,
    amount: uint,
    memo: (buff 34),
    created-at: uint,
    expires-at: uint,
    status: (string-ascii 8),
    ;; none: uSTX; some: the SIP-010 token contract.
    token: (optional principal),
  }
)

;; ---------------------------------------------------------------------------
;; Private helpers

;; One print shape for all three payment events. `payment` is the record as
;; stored, so sender/recipient are always the payment's own parties.
(define-private (print-payment-event
    (event (string-ascii 16))
    (payment-id (buff 32))
    (payment {
      sender: principal,
      recipient: principal,
      amount: uint,
      memo: (buff 34),
      created-at: uint,
      expires-at: uint,
      status: (string-ascii 8),
      token: (optional principal),
    })
  )
  (print {
    event: event,
    payment-id: payment-id,
    sender: (get sender payment),
    recipient: (get recipient payment),
    amount: (get amount payment),
    memo: (get memo payment),
    expires-at: (get expires-at payment),
    token: (get token payment),
    block-height: stacks-block-height,
  })
)

;; Send `amount` uSTX held by this contract to `to`. The allowance is exactly
;; `amount`; any allowance violation or transfer failure becomes
;; ERR-TRANSFER-FAILED so the raw codes (u0..u4, u128) never leak.
(define-private (pay-out
    (amount uint)
    (to principal)
  )
  (match (as-contract? ((with-stx amount))
    (unwrap! (stx-transfer? amount tx-sender to) ERR-TRANSFER-FAILED)
  )
    sent (ok sent)
    allowance-index ERR-TRANSFER-FAILED
  )
)

;; The contract's balance of `token`, as the token itself reports it.
(define-private (ft-balance (token <sip-010-trait>))
  (unwrap! (contract-call? token get-balance current-contract) u0)
)

;; Send `amount` of `token` held by this contract to `to`. The allowance is
;; exactly `amount` of the token's own asset; and the contract's balance
;; must fall by exactly `amount`, so a token whose transfer says `ok`
;; without moving that much fails the payout instead of leaving the books
;; wrong. Either failure becomes ERR-TRANSFER-FAILED.
(define-private (pay-out-ft
    (token <sip-010-trait>)
    (asset-name (string-ascii 128))
    (amount uint)
    (to principal)
  )
  (let ((before (ft-balance token)))
    (try! (match (as-contract? ((with-ft (contract-of token) asset-name amount))
        (unwrap! (contract-call? token transfer amount tx-sender to none)
          ERR-TRANSFER-FAILED
        ))
      sent (ok sent)
      allowance-index ERR-TRANSFER-FAILED
    ))
    (asserts! (is-eq (+ (ft-balance token) amount) before) ERR-TRANSFER-FAILED)
    (ok true)
  )
)

;; Mark a pending payment settled and release its amount from what is locked
;; (STX or its token). Runs before the transfer out (checks-effects-interactions).
(define-private (settle
    (payment-id (buff 32))
    (payment {
      sender: principal,
      recipient: principal,
      amount: uint,
      memo: (buff 34),
      created-at: uint,
      expires-at: uint,
      status: (string-ascii 8),
      token: (optional principal),
    })
    (status (string-ascii 8))
  )
  (begin
    (map-set payments payment-id (merge payment { status: status }))
    (match (get token payment)
      token (map-set token-locked token
        (- (default-to u0 (map-get? token-locked token)) (get amount payment))
      )
      (var-set total-locked (- (var-get total-locked) (get amount payment)))
    )
  )
)

;; The payment's token, checked against the one the caller names: a claim or
;; refund must name the token the payment holds. Returns its asset name.
(define-private (payment-token
    (payment {
      sender: principal,
      recipient: principal,
      amount: uint,
      memo: (buff 34),
      created-at: uint,
      expires-at: uint,
      status: (string-ascii 8),
      token: (optional principal),
    })
    (token <sip-010-trait>)
  )
  (begin
    (asserts! (is-eq (get token payment) (some (contract-of token)))
      ERR-WRONG-TOKEN
    )
    (ok (get asset-name (unwrap! (map-get? tokens (contract-of token)) ERR-WRONG-TOKEN)))
  )
)

(define-private (is-owner-caller)
  (is-eq contract-caller (var-get owner))
)

;; ---------------------------------------------------------------------------
;; Payments

;; Lock `amount` uSTX from tx-sender for `recipient`.
(define-public (create-payment
    (payment-id (buff 32))
    (recipient principal)
    (amount uint)
    (memo (buff 34))
  )
  (let ((payment {
      sender: tx-sender,
      recipient: recipient,
      amount: amount,
      memo: memo,
      created-at: stacks-block-height,
      expires-at: (+ stacks-block-height PAYMENT-TIMEOUT),
      status: STATUS-PENDING,
      token: none,
    }))
    (asserts! (not (var-get paused)) ERR-PAUSED)
    (asserts! (> amount u0) ERR-ZERO-AMOUNT)
    (asserts! (not (is-eq tx-sender recipient)) ERR-SELF-PAYMENT)
    (asserts! (is-none (map-get? payments payment-id)) ERR-ID-USED)
    ;; Every check, including the transfer in, precedes the first write, so
    ;; an error leaves no partial state even when called from another
    ;; function of this contract.
    (unwrap! (stx-transfer? amount tx-sender current-contract)
      ERR-TRANSFER-FAILED
    )
    (map-set payments payment-id payment)
    (var-set total-locked (+ (var-get total-locked) amount))
    (print-payment-event "payment-created" payment-id payment)
    (ok true)
  )
)

;; The recipient takes the funds of a pending, unexpired payment.
(define-public (claim-payment (payment-id (buff 32)))
  (let ((payment (unwrap! (map-get? payments payment-id) ERR-NOT-FOUND)))
    (asserts! (not (var-get paused)) ERR-PAUSED)
    (asserts! (is-eq tx-sender (get recipient payment)) ERR-NOT-RECIPIENT)
    (asserts! (is-eq (get status payment) STATUS-PENDING) ERR-NOT-PENDING)
    (asserts! (< stacks-block-height (get expires-at payment)) ERR-EXPIRED)
    (asserts! (is-none (get token payment)) ERR-WRONG-TOKEN)
    (settle payment-id payment STATUS-CLAIMED)
    (try! (pay-out (get amount payment) (get recipient payment)))
    (print-payment-event "payment-claimed" payment-id payment)
    (ok true)
  )
)

;; Anyone may return an expired pending payment to its sender. Deliberately
;; not gated by `paused`: a pause must never trap funds.
(define-public (refund-expired (payment-id (buff 32)))
  (let ((payment (unwrap! (map-get? payments payment-id) ERR-NOT-FOUND)))
    (asserts! (is-eq (get status payment) STATUS-PENDING) ERR-NOT-PENDING)
    (asserts! (>= stacks-block-height (get expires-at payment)) ERR-NOT-EXPIRED)
    (asserts! (is-none (get token payment)) ERR-WRONG-TOKEN)
    (settle payment-id payment STATUS-REFUNDED)
    (try! (pay-out (get amount payment) (get sender payment)))
    (print-payment-event "payment-refunded" payment-id payment)
    (ok true)
  )
)

;; ---------------------------------------------------------------------------
;; Token payments: the STX functions' rules, for an allowed SIP-010 token.

;; Lock `amount` of `token` from tx-sender for `recipient`. The contract's
;; balance of the token must rise by exactly `amount`: a token whose
;; transfer says `ok` without moving that much is refused.
(define-public (create-payment-ft
    (payment-id (buff 32))
    (recipient principal)
    (amount uint)
    (memo (buff 34))
    (token <sip-010-trait>)
  )
  (let (
      (token-id (contract-of token))
      (payment {
        sender: tx-sender,
        recipient: recipient,
        amount: amount,
        memo: memo,
        created-at: stacks-block-height,
        expires-at: (+ stacks-block-height PAYMENT-TIMEOUT),
        status: STATUS-PENDING,
        token: (some token-id),
      })
      (before (ft-balance token))
    )
    (asserts! (not (var-get paused)) ERR-PAUSED)
    (asserts! (> amount u0) ERR-ZERO-AMOUNT)
    (asserts! (not (is-eq tx-sender recipient)) ERR-SELF-PAYMENT)
    (asserts! (is-none (map-get? payments payment-id)) ERR-ID-USED)
    (asserts! (is-token-allowed token-id) ERR-TOKEN-NOT-ALLOWED)
    (unwrap! (contract-call? token transfer amount tx-sender current-contract none)
      ERR-TRANSFER-FAILED
    )
    (asserts! (is-eq (ft-balance token) (+ before amount)) ERR-TRANSFER-FAILED)
    (map-set payments payment-id payment)
    (map-set token-locked token-id
      (+ (default-to u0 (map-get? token-locked token-id)) amount)
    )
    (print-payment-event "payment-created" payment-id payment)
    (ok true)
  )
)

;; The recipient takes a pending, unexpired token payment; `token` must be
;; the one it holds. Allowed or not: a disallowed token still pays out.
(define-public (claim-payment-ft
    (payment-id (buff 32))
    (token <sip-010-trait>)
  )
  (let ((payment (unwrap! (map-get? payments payment-id) ERR-NOT-FOUND)))
    (asserts! (not (var-get paused)) ERR-PAUSED)
    (asserts! (is-eq tx-sender (get recipient payment)) ERR-NOT-RECIPIENT)
    (asserts! (is-eq (get status payment) STATUS-PENDING) ERR-NOT-PENDING)
    (asserts! (< stacks-block-height (get expires-at payment)) ERR-EXPIRED)
    (let ((asset-name (try! (payment-token payment token))))
      (settle payment-id payment STATUS-CLAIMED)
      (try! (pay-out-ft token asset-name (get amount payment) (get recipient payment)))
    )
    (print-payment-event "payment-claimed" payment-id payment)
    (ok true)
  )
)

;; Anyone may return an expired pending token payment to its sender; also
;; while paused, and also once the token is disallowed.
(define-public (refund-expired-ft
    (payment-id (buff 32))
    (token <sip-010-trait>)
  )
  (let ((payment (unwrap! (map-get? payments payment-id) ERR-NOT-FOUND)))
    (asserts! (is-eq (get status payment) STATUS-PENDING) ERR-NOT-PENDING)
    (asserts! (>= stacks-block-height (get expires-at payment)) ERR-NOT-EXPIRED)
    (let ((asset-name (try! (payment-token payment token))))
      (settle payment-id payment STATUS-REFUNDED)
      (try! (pay-out-ft token asset-name (get amount payment) (get sender payment)))
    )
    (print-payment-event "payment-refunded" payment-id payment)
    (ok true)
  )
)

;; ---------------------------------------------------------------------------
;; Administration. Owner checks use contract-caller, so a contract the owner
;; is tricked into calling cannot act as the owner. There is no admin
;; withdrawal of any kind.

(define-public (pause)
  (begin
    (asserts! (is-owner-caller) ERR-NOT-OWNER)
    (asserts! (not (var-get paused)) ERR-ALREADY-PAUSED)
    (var-set paused true)
    (print {
      event: "paused",
      sender: contract-caller,
      block-height: stacks-block-height,
    })
    (ok true)
  )
)

(define-public (unpause)
  (begin
    (asserts! (is-owner-caller) ERR-NOT-OWNER)
    (asserts! (var-get paused) ERR-NOT-PAUSED)
    (var-set paused false)
    (print {
      event: "unpaused",
      sender: contract-caller,
      block-height: stacks-block-height,
    })
    (ok true)
  )
)

;; Allow `token` for new payments. `asset-name` is its `define-fungible-token`
;; name, which payouts' `with-ft` allowance names; allowing again updates
;; it (a wrong name only makes payouts fail, never lets more out).
;; Allowed while paused: the allowlist is managed through incidents.
(define-public (allow-token
    (token principal)
    (asset-name (string-ascii 128))
  )
  (begin
    (asserts! (is-owner-caller) ERR-NOT-OWNER)
    (map-set tokens token {
      asset-name: asset-name,
      allowed: true,
    })
    (print {
      event: "token-allowed",
      token: token,
      asset-name: asset-name,
      sender: contract-caller,
      block-height: stacks-block-height,
    })
    (ok true)
  )
)

;; Stop new payments in `token`. Payments already made with it can still be
;; claimed and refunded.
(define-public (disallow-token (token principal))
  (begin
    (asserts! (is-owner-caller) ERR-NOT-OWNER)
    (asserts! (is-token-allowed token) ERR-TOKEN-NOT-ALLOWED)
    (map-set tokens token
      (merge (unwrap-panic (map-get? tokens token)) { allowed: false })
    )
    (print {
      event: "token-disallowed",
      token: token,
      sender: contract-caller,
      block-height: stacks-block-height,
    })
    (ok true)
  )
)

;; Step 1 of an ownership transfer. Proposing again replaces the proposal
;; (proposing the current owner cancels it in effect).
(define-public (propose-owner (new-owner principal))
  (begin
    (asserts! (is-owner-caller) ERR-NOT-OWNER)
    (var-set proposed-owner (some new-owner))
    (print {
      event: "owner-proposed",
      sender: (var-get owner),
      recipient: new-owner,
      block-height: stacks-block-height,
    })
    (ok true)
  )
)

;; Step 2: the proposed owner accepts, proving it controls the principal.
(define-public (accept-owner)
  (let ((old-owner (var-get owner)))
    (asserts! (is-eq (some contract-caller) (var-get proposed-owner))
      ERR-NOT-PROPOSED-OWNER
    )
    (var-set owner contract-caller)
    (var-set proposed-owner none)
    (print {
      event: "owner-changed",
      sender: old-owner,
      recipient: contract-caller,
      block-height: stacks-block-height,
    })
    (ok true)
  )
)

;; ---------------------------------------------------------------------------
;; Read-only

(define-read-only (get-payment (payment-id (buff 32)))
  (map-get? payments payment-id)
)

(define-read-only (get-status (payment-id (buff 32)))
  (get status (map-get? payments payment-id))
)

;; True when refund-expired would succeed now.
(define-read-only (is-refundable (payment-id (buff 32)))
  (match (map-get? payments payment-id)
    payment (and
      (is-eq (get status payment) STATUS-PENDING)
      (>= stacks-block-height (get expires-at payment))
    )
    false
  )
)

(define-read-only (get-total-locked)
  (var-get total-locked)
)

;; The sum of the pending payments' amounts in `token`.
(define-read-only (get-token-locked (token principal))
  (default-to u0 (map-get? token-locked token))
)

(define-read-only (is-token-allowed (token principal))
  (default-to false (get allowed (map-get? tokens token)))
)

;; The asset name recorded for `token`, allowed or not.
(define-read-only (get-token-asset-name (token principal))
  (get asset-name (map-get? tokens token))
)

(define-read-only (get-owner)
  (var-get owner)
)

(define-read-only (get-proposed-owner)
  (var-get proposed-owner)
)

(define-read-only (is-paused)
  (var-get paused)
)

(define-read-only (get-timeout)
  PAYMENT-TIMEOUT
)
