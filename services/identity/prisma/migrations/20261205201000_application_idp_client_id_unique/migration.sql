-- CreateIndex: one application per client id at an IdP, so an ID token issued to one
-- application can be exchanged by that application alone.
CREATE UNIQUE INDEX "applications_idp_client_id_key" ON "applications"("idp_client_id");
