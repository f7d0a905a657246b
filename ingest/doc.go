// Package ingest is the source-neutral core of a pass: what any source of users and groups
// (the directory today, an HR file next) needs to turn what it read into a safe change of the
// cache. It decides deletions and deactivations under the deletion threshold and the holds
// (invariant 5, docs/architecture.md), keeps held changes from touching anything else, holds
// mass membership removals, approves holds, encodes source records (the per-source digest
// state that lets a full pass skip unchanged users), runs the [[rules]] and accumulates the
// virtual groups they fill, and builds member edits. It knows nothing of LDAP: a source
// hands it resources (id, type, SCIM attributes and members) and source records, and reads
// the cache through the small Store it declares.
//
// Plan (issue 12): what moves here from ldapsync, and what stays.
//
//	ldapsync file      → here                               stays in ldapsync
//	edits.go           → edits.go (Edits, SortedByID)
//	holds.go           → approve.go (ApproveHolds,          a wrapper ApproveHolds(store, ids)
//	                     dropHeldManagers)
//	finish.go          → members.go (PruneMembers,          finish: the pass's last batch, the
//	                     AddMembers); deletions.go          watermark, refreshCopies (renames a
//	                     (Deletions: the deletion tracker,  delta saw), dups
//	                     the threshold decision, hold
//	                     reasons, the hold set to store)
//	heldrefs.go        → heldrefs.go (HeldRefs: held        when a full pass has read every user
//	                     users keep groups and reports)
//	massremoval.go     → massremoval.go (MemberHolds,       which members leave because the pass
//	                     Threshold.MassRemoval)             deletes them (needs what was read)
//	srchash.go         → source.go (SourceRecord)           the entry digest, manager checks
//	rules.go, explain  → rules.go, explain.go (Rules,       aliases for the exported names
//	                     CompileRules, Explain)
//	rules.go (pass)    → virtual.go (VirtualGroups: the     the call at queue and finish
//	                     accumulator of rule matches)
//	resolve.go         —                                    resolver.go: a resolver type (DN and
//	                                                        uid → id, tentative references,
//	                                                        re-checks) with its own tests
//
// ldapsync keeps what is LDAP: connections, reading, the dialects (AD, OpenLDAP syncrepl and
// accesslog, modifyTimestamp), mapping entries to SCIM. Its Store is a superset of Store here.
package ingest
