# usm-dispatch for Request Tracker 5: custom fields and the scrip that connects RT to usm.
# Apply once:   rt-setup-database-5 --action insert --datafile integrations/rt/initialdata.pm
# Then set in RT_SiteConfig.pm (see docs/integrations/rt.md):
#   Set($USMEventsURL,   'https://usm.example.org/v1/sources/rt/events');
#   Set($USMEventsToken, '<the same value as USM_SOURCE_RT_SECRET on the usm side>');
#   Set($USMServiceUser, 'usm-svc');   # the account usm writes back with; its changes are not sent
#
# The value lists below are the ones tables/<version>/sources.toml maps for source "rt"; change
# both together (usm tables validate refuses a mapping to an unknown level).

@CustomFields = (
    {   Name        => 'Impact',
        Type        => 'SelectSingle',
        LookupType  => 'RT::Queue-RT::Ticket',
        Description => 'USM impact: who is affected',
        Values      => [
            { Name => 'Organisation', SortOrder => 1 },
            { Name => 'Department',   SortOrder => 2 },
            { Name => 'Group',        SortOrder => 3 },
            { Name => 'User',         SortOrder => 4 },
        ],
    },
    {   Name        => 'Urgency',
        Type        => 'SelectSingle',
        LookupType  => 'RT::Queue-RT::Ticket',
        Description => 'USM urgency: how much work is impaired',
        Values      => [
            { Name => 'Work stopped',       SortOrder => 1 },
            { Name => 'Seriously impaired', SortOrder => 2 },
            { Name => 'Workaround',         SortOrder => 3 },
            { Name => 'Can wait',           SortOrder => 4 },
        ],
    },
    {   Name        => 'Call type',
        Type        => 'SelectSingle',
        LookupType  => 'RT::Queue-RT::Ticket',
        Description => 'USM call type (empty: incident)',
        Values      => [
            { Name => 'Incident',        SortOrder => 1 },
            { Name => 'Service request', SortOrder => 2 },
            { Name => 'Change',          SortOrder => 3 },
            { Name => 'Wish',            SortOrder => 4 },
            { Name => 'Risk',            SortOrder => 5 },
        ],
    },
    {   Name        => 'Service',
        Type        => 'FreeformSingle',
        LookupType  => 'RT::Queue-RT::Ticket',
        Description => 'USM service name from the service agreements (e.g. email)',
    },
    {   Name        => 'Category',
        Type        => 'FreeformSingle',
        LookupType  => 'RT::Queue-RT::Ticket',
        Description => 'Free category; USM routing rules may match on it (e.g. security)',
    },
    {   Name        => 'USM Priority',
        Type        => 'FreeformSingle',
        LookupType  => 'RT::Queue-RT::Ticket',
        Description => 'Written by usm-dispatch: the priority the USM tables give (P1 ... P5)',
    },
    {   Name        => 'USM Missed',
        Type        => 'FreeformSingle',
        LookupType  => 'RT::Queue-RT::Ticket',
        Description => 'Written by usm-dispatch: the USM targets missed (response, resolve)',
    },
);

# Global custom fields: apply them to every queue (ObjectId 0).
@Final = (
    sub {
        for my $name ( 'Impact', 'Urgency', 'Call type', 'Service', 'Category', 'USM Priority',
            'USM Missed' )
        {
            my $cf = RT::CustomField->new( RT->SystemUser );
            $cf->LoadByName( Name => $name, LookupType => 'RT::Queue-RT::Ticket' );
            next unless $cf->id;
            my ( $ok, $msg ) = $cf->AddToObject( RT::Queue->new( RT->SystemUser ) );
            RT->Logger->debug("USM: $name global: $msg") unless $ok;
        }
    },
);

@Scrips = (
    {   Description       => 'USM: send the ticket to usm-dispatch, apply the decision it answers',
        Queue             => 0,                      # global: every queue
        ScripCondition    => 'On Transaction',
        ScripAction       => 'User Defined',
        Template          => 'Blank',
        Stage             => 'TransactionBatch',     # once per request, with the final state
        CustomIsApplicableCode => <<'PERL',
# usm's own changes (its write-back account) are not sent back to it.
my $svc = RT->Config->Get('USMServiceUser') || 'usm-svc';
my @txns = @{ $self->TicketObj->TransactionBatch || [] };
@txns = ( $self->TransactionObj ) unless @txns;
return scalar grep { $_->CreatorObj->Name ne $svc } @txns;
PERL
        CustomPrepareCode => 'return 1;',
        CustomCommitCode  => <<'PERL',
my $url = RT->Config->Get('USMEventsURL') or return 1;
my $token = RT->Config->Get('USMEventsToken') || '';
my $t = RT::Ticket->new( RT->SystemUser );
$t->Load( $self->TicketObj->id );
my %cf;
my $cfs = $t->CustomFields;
while ( my $cf = $cfs->Next ) {
    my @v = map { $_->Content } @{ $t->CustomFieldValues( $cf->id )->ItemsArrayRef };
    $cf{ $cf->Name } = $cf->MaxValues == 1 ? $v[0] : \@v;
}
my $date = sub { my $d = shift; $d->IsSet ? $d->W3CDTF( Timezone => 'UTC' ) : undef };
my @batch = @{ $self->TicketObj->TransactionBatch || [] };
my $created = grep { $_->Type eq 'Create' } @batch;
my $payload = {
    event  => ( $created ? 'create' : 'update' ),
    ticket => { id => $t->id, queue => $t->QueueObj->Name, subject => $t->Subject,
                status => $t->Status, priority => $t->Priority, owner => $t->OwnerObj->Name,
                created => $date->( $t->CreatedObj ), due => $date->( $t->DueObj ),
                custom_fields => \%cf },
};
require HTTP::Tiny; require JSON;
my $json = JSON->new->utf8->canonical;
my $res = HTTP::Tiny->new( timeout => 5 )->post( $url, {
    headers => { 'Content-Type' => 'application/json', 'Authorization' => "Bearer $token" },
    content => $json->encode($payload) } );
unless ( $res->{success} ) {
    # usm keeps nothing half-done: it refused the event (the reason is in its answer) or was
    # unreachable; `usm sources sync rt` picks the ticket up later.
    RT->Logger->error("USM: POST to $url failed: $res->{status} $res->{reason} $res->{content}");
    return 1;
}
my $answer = eval { $json->decode( $res->{content} ) } or return 1;
my $fields = $answer->{fields} or return 1;
# Apply the decision as the usm service account, so these changes are not sent again.
my $svc = RT::CurrentUser->new( RT->SystemUser );
$svc->LoadByName( RT->Config->Get('USMServiceUser') || 'usm-svc' );
my $mine = RT::Ticket->new( $svc->id ? $svc : RT->SystemUser );
$mine->Load( $t->id );
$mine->SetPriority( $fields->{Priority} )
    if defined $fields->{Priority} && $fields->{Priority} ne $mine->Priority;
if ( defined $fields->{Due} ) {
    my $due = RT::Date->new( RT->SystemUser );
    $due->Set( Format => 'ISO', Value => $fields->{Due}, Timezone => 'UTC' );
    $mine->SetDue( $due->ISO ) if $due->ISO ne $mine->DueObj->ISO;
}
my $custom = $fields->{CustomFields} || {};
for my $name ( sort keys %$custom ) {
    my $now = $mine->FirstCustomFieldValue($name);
    unless ( defined $custom->{$name} && length $custom->{$name} ) {
        # null: usm clears the field (say, no target is missed under a new decision)
        $mine->DeleteCustomFieldValue( Field => $name, Value => $now ) if defined $now;
        next;
    }
    next if defined $now && $now eq $custom->{$name};
    my ( $ok, $msg ) = $mine->AddCustomFieldValue( Field => $name, Value => $custom->{$name} );
    RT->Logger->error("USM: cannot set $name: $msg") unless $ok;
}
return 1;
PERL
    },
);

1;
